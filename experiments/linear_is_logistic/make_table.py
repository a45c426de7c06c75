"""Study 1 (experiments/linear_is_logistic): the tables and the figure, from MLflow.

Reads every FINISHED run of the experiment ``study_linear`` (the sweep in README.md),
downloads each run's ``checkpoints/last.npz``, composes the trained layers into one map
``f = W x + b`` and compares it with the network and with scikit-learn's
``LogisticRegression`` fitted on the same standardised split::

    python experiments/linear_is_logistic/make_table.py [--tracking-uri URI] [--figures DIR]

Prints Markdown; writes ``val_curves.png`` into ``--figures`` (default: this folder).
The store is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import sys
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_linear"
HERE = Path(__file__).resolve().parent
HINT = "run the commands in README.md first"


class StudyError(ReportError):
    """Printed as one line; exit status 2."""


def compose(weights: list[np.ndarray], biases: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``W_L ... W_1`` (C, d) and ``W_L ... W_2 b_1 + ... + W_L b_(L-1) + b_L`` (C,)."""
    W, b = weights[0], biases[0]
    for W_l, b_l in zip(weights[1:], biases[1:]):
        W, b = W_l @ W, W_l @ b + b_l
    return W, b


def centred_cosine(A: np.ndarray, B: np.ndarray) -> float:
    """Cosine of two (C, d) maps after removing the class mean of each column (softmax
    ignores a shift common to every class, so only the centred map is identified)."""
    A, B = A - A.mean(axis=0), B - B.mean(axis=0)
    return float((A * B).sum() / np.linalg.norm(A) / np.linalg.norm(B))


def logistic_regressions(data: Any) -> dict[str, Any]:
    """scikit-learn's references on the same split: no penalty (C=inf is sklearn 1.8+'s
    spelling of penalty=None) and the default L2 penalty C=1."""
    from sklearn.linear_model import LogisticRegression

    out = {}
    for name, C in (("LogisticRegression(C=inf)", np.inf), ("LogisticRegression(C=1)", 1.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = LogisticRegression(C=C, max_iter=10_000).fit(data.X_train, data.y_train)
    return out


def nll(logits: np.ndarray, y: np.ndarray) -> float:
    from mlpx.nn.losses import softmax_cross_entropy

    return float(softmax_cross_entropy(logits, y)[0])


def curve(client: Any, run_id: str, key: str) -> list[float]:
    """A per-epoch metric of a run, in step order."""
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def analyse(client: Any, runs: list[Any], data: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one record per run: depth, lr, seed, accuracy, the composed map's comparisons;
    the fitted logistic regressions)."""
    from mlpx.app.build import build_model, run_settings
    from mlpx.checkpoint import load_checkpoint

    lr = logistic_regressions(data)
    lr_inf, lr_l2 = lr["LogisticRegression(C=inf)"], lr["LogisticRegression(C=1)"]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            rid = run.info.run_id
            try:
                path = client.download_artifacts(rid, "checkpoints/last.npz", tmp)
            except Exception as exc:
                raise StudyError(f"run {rid} has no checkpoints/last.npz ({exc})") from None
            state = load_checkpoint(path).model
            net = build_model(run_settings(client, rid), data)  # as the run built it
            net.load_state_dict(state)
            if set(net.activations) != {"linear"}:
                raise StudyError(f"run {rid} is not all-linear: {net.activations}")
            L = net.num_layers
            W, b = compose(
                [state[f"W_{i + 1}"] for i in range(L)], [state[f"b_{i + 1}"] for i in range(L)]
            )
            net_logits = np.asarray(net.forward(data.X_test))
            map_logits = data.X_test @ W.T + b
            pred = map_logits.argmax(axis=1)
            records.append(
                {
                    "depth": L,
                    "lr": float(run.data.params.get("optimizer.lr", "nan")),
                    "widths": run.data.params.get("model.widths", "?"),
                    "seed": int(run.data.params.get("trainer.seed", 0)),
                    "params": net.num_parameters,
                    "test_acc": float(run.data.metrics["test/accuracy"]),
                    "train_loss": nll(data.X_train @ W.T + b, data.y_train),
                    "map_shape": W.shape,
                    "max_logit_diff": float(np.abs(net_logits - map_logits).max()),
                    "same_pred": bool((pred == net_logits.argmax(axis=1)).all()),
                    "agree_lr": float((pred == lr_inf.predict(data.X_test)).mean()),
                    "agree_lr1": float((pred == lr_l2.predict(data.X_test)).mean()),
                    "cos_lr": centred_cosine(W, lr_inf.coef_),
                    "W": W,
                    "val_loss": curve(client, rid, "val/loss"),
                    "val_acc": curve(client, rid, "val/accuracy"),
                }
            )
    return records, lr


def first_epoch(curve: list[float], threshold: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= threshold), None)


def by_depth_lr(records: list[dict[str, Any]]) -> dict[tuple[int, float], list[dict[str, Any]]]:
    """Records grouped by (L, Adam's lr), sorted by seed."""
    groups: dict[tuple[int, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["depth"], r["lr"]].append(r)
    return {k: sorted(groups[k], key=lambda r: r["seed"]) for k in sorted(groups)}


def tables(records: list[dict[str, Any]], lr: dict[str, Any], data: Any) -> str:
    groups = by_depth_lr(records)
    depth1 = {(r["seed"], r["lr"]): r["W"] for r in records if r["depth"] == 1}
    lines = [
        "| model | Adam lr | hidden widths | parameters | seeds | test accuracy "
        "| train loss (final) | epochs to val acc ≥ 0.95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (depth, rate), rs in groups.items():
        reach = [first_epoch(r["val_acc"], 0.95) for r in rs]
        reached = [e for e in reach if e is not None]
        reach_text = (
            mean_std([float(e) for e in reached], ".1f", mark_single=True) if reached else "never"
        )
        if 0 < len(reached) < len(rs):
            reach_text += f" ({len(reached)}/{len(rs)} runs)"
        lines.append(
            f"| linear MLP, L = {depth} | {rate:g} | {rs[0]['widths']} | {rs[0]['params']} "
            f"| {len(rs)} "
            f"| {mean_std([r['test_acc'] for r in rs], mark_single=True)} "
            f"| {mean_std([r['train_loss'] for r in rs], mark_single=True)} | {reach_text} |"
        )
    for name, model in lr.items():
        train_loss = nll(model.decision_function(data.X_train), data.y_train)
        lines.append(
            f"| {name} | – | – | {model.coef_.size + model.intercept_.size} | deterministic "
            f"| {model.score(data.X_test, data.y_test):.4f} | {train_loss:.4f} | – |"
        )
    lines += [
        "",
        "| L | Adam lr | composed map | max abs(network − composed) logit | same predictions "
        "as the network | test agreement with LR(C=inf) | with LR(C=1) | cos(W, W of LR(C=inf)) "
        "| cos(W, W of L = 1, same seed and lr) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (depth, rate), rs in groups.items():
        shape = "x".join(map(str, rs[0]["map_shape"])) + " + bias"
        same = sum(r["same_pred"] for r in rs)
        cos1 = [
            centred_cosine(r["W"], depth1[r["seed"], r["lr"]])
            for r in rs
            if (r["seed"], r["lr"]) in depth1
        ]
        lines.append(
            f"| {depth} | {rate:g} | {shape} | {max(r['max_logit_diff'] for r in rs):.1e} "
            f"| {same}/{len(rs)} runs | {mean_std([r['agree_lr'] for r in rs], mark_single=True)} "
            f"| {mean_std([r['agree_lr1'] for r in rs], mark_single=True)} "
            f"| {mean_std([r['cos_lr'] for r in rs], '.3f', mark_single=True)} "
            f"| {mean_std(cos1, '.3f', mark_single=True) if cos1 else '–'} |"
        )
    return "\n".join(lines) + "\n"


def figure(records: list[dict[str, Any]], lr: dict[str, Any], data: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_depth_lr(records)
    depths = sorted({d for d, _ in groups})
    rates = sorted({r for _, r in groups})
    styles = dict(zip(rates, ("-", "--", "-.", ":")))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.0), dpi=90)
    for key, ax, label in (
        ("val_loss", axes[0], "validation loss"),
        ("val_acc", axes[1], "validation accuracy"),
    ):
        for (depth, rate), rs in groups.items():
            curves = np.array([r[key] for r in rs])
            epochs = np.arange(1, curves.shape[1] + 1)
            color = f"C{depths.index(depth)}"
            ax.plot(
                epochs,
                curves.mean(axis=0),
                color=color,
                linestyle=styles.get(rate, "-"),
                label=f"L = {depth}, lr {rate:g}",
            )
            if len(curves) > 1:
                ax.fill_between(
                    epochs, curves.min(axis=0), curves.max(axis=0), color=color, alpha=0.15
                )
        for (name, model), style in zip(lr.items(), ((0, (1, 1)), (0, (5, 2, 1, 2)))):
            if key == "val_loss":
                value = nll(model.decision_function(data.X_val), data.y_val)
            else:
                value = model.score(data.X_val, data.y_val)
            ax.axhline(value, color="grey", linestyle=style, linewidth=1.2, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_ylim(0.85, 1.0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.suptitle(
        "digits, all-linear MLPs trained with Adam: mean over seeds, band = min..max", fontsize=9
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, default=HERE, help="folder for val_curves.png")
    args = p.parse_args(argv)
    uri = args.tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    try:
        client, runs = study_runs(uri, args.experiment, hint=HINT)
        from mlpx.app.build import build_dataset, run_settings

        data = build_dataset(run_settings(client, runs[0].info.run_id))  # the runs' split
        records, lr = analyse(client, runs, data)
    except ReportError as exc:
        print(f"make_table: error: {exc}", file=sys.stderr)
        return 2
    print(tables(records, lr, data), end="")
    args.figures.mkdir(parents=True, exist_ok=True)
    figure(records, lr, data, args.figures / "val_curves.png")
    print(f"make_table: wrote {args.figures / 'val_curves.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

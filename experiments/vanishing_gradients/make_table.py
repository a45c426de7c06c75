"""Study 2 (experiments/vanishing_gradients): the table and the figures, from MLflow.

Reads every FINISHED run of the experiment ``study_vanishing`` (the sweep in README.md)
and its per-step gradient norms ``grad_norm/layer_<l>`` (l = 1..L, L = model.depth + 1:
the hidden layers and the output layer)::

    python experiments/vanishing_gradients/make_table.py [--tracking-uri URI] [--figures DIR]

"At initialisation" is the first logged step (step 1: the gradient of the first batch at
the initial weights, when trainer.log_every_n_steps=1); "last epoch" is the mean over the
last epoch's logged steps. Prints Markdown; writes ``grad_norms.png`` and
``test_accuracy.png`` into ``--figures`` (default: this folder). The store is
``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_vanishing"
HERE = Path(__file__).resolve().parent
HINT = "run the commands in README.md first"
ACTIVATION_ORDER = ("sigmoid", "tanh", "relu")


class StudyError(ReportError):
    """Printed as one line; exit status 2."""


def read_run(client: Any, run: Any) -> dict[str, Any]:
    """The keys of a run and its per-layer gradient norms: (L,) at init and last epoch."""
    p = run.data.params
    depth = int(p["model.depth"]) if p.get("model.depth") not in (None, "None") else None
    if depth is None:
        raise StudyError(f"run {run.info.run_id} has no model.depth: not a study_vanishing run")
    L = depth + 1
    rid = run.info.run_id
    epoch_ends = sorted(m.step for m in client.get_metric_history(rid, "epoch"))
    last_start = epoch_ends[-2] if len(epoch_ends) > 1 else 0
    init, last = [], []
    for layer in range(1, L + 1):
        history = sorted(
            client.get_metric_history(rid, f"grad_norm/layer_{layer}"), key=lambda m: m.step
        )
        if not history:
            raise StudyError(
                f"run {rid} logged no grad_norm/layer_{layer}: keep logger.log_grad_norms"
            )
        init.append(history[0].value)
        last.append(float(np.mean([m.value for m in history if m.step > last_start])))
    return {
        "activation": p["model.activation"],
        "depth": depth,
        "optimizer": p["optimizer.name"],
        "lr": p.get("optimizer.lr"),
        "seed": int(p["trainer.seed"]),
        "first_step": history[0].step,
        "init": np.array(init),
        "last": np.array(last),
        "test_acc": float(run.data.metrics["test/accuracy"]),
    }


def ordered(activations: set[str]) -> list[str]:
    return sorted(activations, key=lambda a: (*ACTIVATION_ORDER, a).index(a))


def table(records: list[dict[str, Any]]) -> str:
    optimizers = sorted({r["optimizer"] for r in records})
    lrs = {o: sorted({r["lr"] for r in records if r["optimizer"] == o}) for o in optimizers}
    first = {r["first_step"] for r in records}
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["activation"], r["depth"]].append(r)
    head = ["activation", "hidden layers", "L"]
    head += ["‖δW_1‖/‖δW_L‖ at init", "‖δW_1‖ at init"]
    head += [f"‖δW_1‖/‖δW_L‖, last epoch, {o}" for o in optimizers]
    head += [f"test accuracy, {o} (lr {', '.join(lrs[o])})" for o in optimizers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for act in ordered({a for a, _ in groups}):
        for depth in sorted(d for a, d in groups if a == act):
            rs = groups[act, depth]
            # The gradient at init depends on the seed only (same weights, same first batch).
            at_init = {r["seed"]: r["init"] for r in rs}
            ratio0 = [v[0] / v[-1] for v in at_init.values()]
            row = [act, str(depth), str(depth + 1), mean_std(ratio0, ".1e", mark_single=True)]
            row.append(mean_std([v[0] for v in at_init.values()], ".1e", mark_single=True))
            for o in optimizers:
                row.append(
                    mean_std(
                        [r["last"][0] / r["last"][-1] for r in rs if r["optimizer"] == o],
                        ".1e",
                        mark_single=True,
                    )
                )
            for o in optimizers:
                row.append(
                    mean_std(
                        [r["test_acc"] for r in rs if r["optimizer"] == o], ".3f", mark_single=True
                    )
                )
            lines.append("| " + " | ".join(row) + " |")
    seeds = sorted({r["seed"] for r in records})
    note = (
        f"\nMean ± sample std over seeds {seeds}; gradient at init from logged step "
        f"{sorted(first)}; chance accuracy is 0.1.\n"
    )
    return "\n".join(lines) + "\n" + note


def figures(records: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acts = ordered({r["activation"] for r in records})
    depths = sorted({r["depth"] for r in records})
    optimizers = sorted({r["optimizer"] for r in records})
    colors = {a: f"C{i}" for i, a in enumerate(acts)}
    deepest = depths[-1]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    ax = axes[0]
    for act in acts:
        inits = {
            r["seed"]: r["init"] for r in records if (r["activation"], r["depth"]) == (act, deepest)
        }
        if inits:
            norms = np.mean(list(inits.values()), axis=0)
            ax.plot(np.arange(1, len(norms) + 1), norms, "o-", color=colors[act], label=act)
    ax.set_yscale("log")
    ax.set_xlabel(f"layer l (depth {deepest} hidden layers, L = {deepest + 1})")
    ax.set_ylabel("‖δW_l‖ at initialisation")
    ax.set_title("per-layer gradient norm at init", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax = axes[1]
    styles = {o: s for o, s in zip(optimizers, ("--", ":", "-."))}
    for act in acts:
        init_ratio, last_ratio = [], {o: [] for o in optimizers}
        for d in depths:
            rs = [r for r in records if (r["activation"], r["depth"]) == (act, d)]
            at_init = {r["seed"]: r["init"] for r in rs}
            init_ratio.append(np.mean([v[0] / v[-1] for v in at_init.values()]))
            for o in optimizers:
                vals = [r["last"][0] / r["last"][-1] for r in rs if r["optimizer"] == o]
                last_ratio[o].append(np.mean(vals) if vals else np.nan)
        ax.plot(depths, init_ratio, "o-", color=colors[act], label=f"{act}, at init")
        for o in optimizers:
            ax.plot(
                depths,
                last_ratio[o],
                styles[o],
                color=colors[act],
                alpha=0.8,
                label=f"{act}, last epoch, {o}",
            )
    ax.set_yscale("log")
    ax.set_xticks(depths)
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("‖δW_1‖ / ‖δW_L‖")
    ax.set_title("first layer against output layer (mean over seeds)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, ncol=1, loc="lower left")
    fig.suptitle("digits, width 64, glorot_uniform", fontsize=9)
    fig.tight_layout()
    paths = [folder / "grad_norms.png"]
    fig.savefig(paths[0])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=100)
    for act in acts:
        for o in optimizers:
            means = [
                np.mean(
                    [
                        r["test_acc"]
                        for r in records
                        if (r["activation"], r["depth"], r["optimizer"]) == (act, d, o)
                    ]
                    or [np.nan]
                )
                for d in depths
            ]
            ax.plot(depths, means, "o" + styles[o], color=colors[act], label=f"{act}, {o}")
    ax.axhline(0.1, color="grey", linewidth=1, linestyle=":", label="chance")
    ax.set_xticks(depths)
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_title("digits, 15 epochs", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    paths.append(folder / "test_accuracy.png")
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, default=HERE, help="folder for the PNG figures")
    args = p.parse_args(argv)
    uri = args.tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    try:
        client, runs = study_runs(uri, args.experiment, hint=HINT)
        records = [read_run(client, run) for run in runs]
    except ReportError as exc:
        print(f"make_table: error: {exc}", file=sys.stderr)
        return 2
    print(table(records), end="")
    args.figures.mkdir(parents=True, exist_ok=True)
    for path in figures(records, args.figures):
        print(f"make_table: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

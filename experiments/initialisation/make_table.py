"""Study 5, initialisation: the table (and the figures) from MLflow.

    python experiments/initialisation/make_table.py --tracking-uri sqlite:////tmp/mlpx-studies-b/mlflow.db
    python experiments/initialisation/make_table.py --figures experiments/initialisation

Reads the FINISHED runs of the experiment ``study_initialisation`` (one per config: the
newest) and prints, per (activation, init), mean ± std over ``trainer.seed`` of: the loss of
the untrained network on the training split (tag ``sanity.initial_loss.loss``), the gradient
norms ``||delta_W_l||`` at step 1 (the gradient of the first mini-batch at the initial
weights; the run logs every step), the first epoch with val/accuracy >= 0.9 and the final
test accuracy. ``--figures DIR`` writes ``grad_norms_at_init.png`` (per-layer norms at
step 1) and ``val_accuracy.png`` (val/accuracy per epoch, mean over seeds).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_initialisation"
COMMAND = (
    "mlpx -m experiment=study_init model.activation=relu,tanh "
    "model.init=glorot_uniform,glorot_normal,he_normal,normal trainer.seed=0,1,2"
)
INIT_ORDER = [
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "normal",
]


def collect(client: Any, runs: list[Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(activation, init) -> one record per seed: initial loss, step-1 norms, curves, accuracy."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        p, m = r.data.params, r.data.metrics
        n_layers = sum(1 for k in m if k.startswith("grad_norm/layer_"))
        norms = []
        for layer in range(1, n_layers + 1):
            hist = client.get_metric_history(r.info.run_id, f"grad_norm/layer_{layer}")
            norms.append(min(hist, key=lambda h: h.step).value)
        val = sorted(
            (h.step, h.value) for h in client.get_metric_history(r.info.run_id, "val/accuracy")
        )
        init = p["model.init"] + (f"({p['model.init_std']})" if p["model.init"] == "normal" else "")
        groups[(p["model.activation"], init)].append(
            {
                "seed": p["trainer.seed"],
                "initial_loss": float(  # a tag since issue 15; a metric in older runs
                    r.data.tags.get("sanity.initial_loss.loss")
                    or m.get("sanity/initial_loss/loss", math.nan)
                ),
                "norms": norms,
                "val_accuracy": [v for _, v in val],
                "test_accuracy": m["test/accuracy"],
            }
        )
    return groups


def first_epoch(curve: list[float], level: float = 0.9) -> float:
    return next((i + 1 for i, v in enumerate(curve) if v >= level), math.inf)


def sort_key(item: tuple[tuple[str, str], Any]) -> tuple[str, int, str]:
    (act, init), _ = item
    base = init.split("(")[0]
    return act, INIT_ORDER.index(base) if base in INIT_ORDER else 99, init


def table(groups: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    n_layers = len(next(iter(groups.values()))[0]["norms"])
    mid = (n_layers + 1) // 2
    seeds = sorted({rec["seed"] for recs in groups.values() for rec in recs})
    lines = [
        f"Mean ± std over seeds {', '.join(seeds)}; ||dW_l|| at step 1 (initial weights, "
        f"first mini-batch), l = 1 (input side) .. {n_layers} (output). ln 10 = 2.303.",
        "",
        f"| activation | init | initial loss | ‖dW_1‖ | ‖dW_{mid}‖ | ‖dW_{n_layers}‖ "
        "| first epoch val acc ≥ 0.9 | test accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (act, init), recs in sorted(groups.items(), key=sort_key):
        epochs = [first_epoch(r["val_accuracy"]) for r in recs]
        never = sum(math.isinf(e) for e in epochs)
        reached = [e for e in epochs if not math.isinf(e)]
        when = mean_std(reached, ".1f") if reached else "never"
        if never and reached:
            when += f" ({never} never)"
        lines.append(
            f"| {act} | {init} | {mean_std([r['initial_loss'] for r in recs], '.3f')} "
            f"| {mean_std([r['norms'][0] for r in recs], '.2e')} "
            f"| {mean_std([r['norms'][mid - 1] for r in recs], '.2e')} "
            f"| {mean_std([r['norms'][-1] for r in recs], '.2e')} "
            f"| {when} | {mean_std([r['test_accuracy'] for r in recs], '.3f')} |"
        )
    return "\n".join(lines)


def figures(groups: dict[tuple[str, str], list[dict[str, Any]]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    acts = sorted({a for a, _ in groups})
    out = []
    for name, what in (("grad_norms_at_init.png", "norms"), ("val_accuracy.png", "val_accuracy")):
        fig, axes = plt.subplots(1, len(acts), figsize=(4.6 * len(acts), 3.4), squeeze=False)
        for ax, act in zip(axes[0], acts):
            for (a, init), recs in sorted(groups.items(), key=sort_key):
                if a != act:
                    continue
                y = np.mean([r[what] for r in recs], axis=0)
                x = np.arange(1, len(y) + 1)
                ax.plot(x, y, marker="o", ms=3, label=init)
            if what == "norms":
                ax.set_yscale("log")
                ax.set_xlabel("layer l (1 = input side)")
                ax.set_ylabel("||delta_W_l|| at step 1")
            else:
                ax.set_xlabel("epoch")
                ax.set_ylabel("val/accuracy")
                ax.set_ylim(0, 1)
            ax.set_title(f"{act}, depth 8 x 64, digits (mean of seeds)", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, help="also write the two PNGs here")
    args = p.parse_args(argv)
    try:
        client, runs = study_runs(
            args.tracking_uri, args.experiment, hint=f"run first: {COMMAND}", metric="test/accuracy"
        )
    except ReportError as exc:
        sys.exit(f"make_table: {exc}")
    groups = collect(client, runs)
    print(table(groups))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for path in figures(groups, args.figures):
            print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

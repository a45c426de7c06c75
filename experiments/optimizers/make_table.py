"""Study 3 (experiments/optimizers): the search table, the final table and the figure.

Reads every FINISHED run of the experiment ``study_optimizers`` (the sweeps in README.md).
For each dataset and optimizer, the learning rate is the one whose seed-0 run has the best
final ``val/accuracy`` (ties: the lower final ``val/loss``); the final table is the mean ±
sample std over every seed run at that learning rate::

    python experiments/optimizers/make_table.py [--tracking-uri URI] [--figures DIR]
    python experiments/optimizers/make_table.py --chosen    # "dataset optimizer lr" lines

Prints Markdown; writes ``learning_curves.png`` into ``--figures`` (default: this folder).
The store is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_optimizers"
HERE = Path(__file__).resolve().parent
HINT = "run the commands in README.md first"
OPTIMIZER_ORDER = ("sgd", "momentum", "nesterov", "adam", "rmsprop")
SEARCH_SEED = 0


class StudyError(ReportError):
    """Printed as one line; exit status 2."""


def record(run: Any) -> dict[str, Any]:
    p, m = run.data.params, run.data.metrics
    return {
        "id": run.info.run_id,
        "dataset": p["dataset.name"],
        "optimizer": p["optimizer.name"],
        "lr": float(p["optimizer.lr"]),
        "seed": int(p["trainer.seed"]),
        "val_acc": float(m["val/accuracy"]),
        "val_loss": float(m["val/loss"]),
        "test_acc": float(m["test/accuracy"]),
    }


def order(names: set[str], first: tuple[str, ...]) -> list[str]:
    return sorted(names, key=lambda n: ((*first, n).index(n), n))


def choose(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(dataset, optimizer) -> the learning rate of the best seed-0 run."""
    chosen = {}
    for key in {(r["dataset"], r["optimizer"]) for r in records}:
        search = [r for r in records if (r["dataset"], r["optimizer"]) == key]
        search = [r for r in search if r["seed"] == SEARCH_SEED]
        if search:
            best = max(search, key=lambda r: (r["val_acc"], -r["val_loss"]))
            chosen[key] = best["lr"]
    return chosen


def tables(records: list[dict[str, Any]], chosen: dict[tuple[str, str], float]) -> str:
    datasets = sorted({r["dataset"] for r in records})
    optimizers = order({r["optimizer"] for r in records}, OPTIMIZER_ORDER)
    lines = [
        f"Learning-rate search (seed {SEARCH_SEED}): final val accuracy (val loss); "
        "**bold** = chosen",
        "",
        "| dataset | optimizer | lr: val accuracy (val loss) |",
        "|---|---|---|",
    ]
    for ds in datasets:
        for opt in optimizers:
            search = sorted(
                (
                    r
                    for r in records
                    if (r["dataset"], r["optimizer"], r["seed"]) == (ds, opt, SEARCH_SEED)
                ),
                key=lambda r: r["lr"],
            )
            if not search:
                continue
            cells = []
            for r in search:
                cell = f"{r['lr']:g}: {r['val_acc']:.3f} ({r['val_loss']:.3f})"
                cells.append(f"**{cell}**" if r["lr"] == chosen.get((ds, opt)) else cell)
            if chosen.get((ds, opt)) in (search[0]["lr"], search[-1]["lr"]):
                cells.append("(best at the grid's edge)")
            lines.append(f"| {ds} | {opt} | {' · '.join(cells)} |")
    lines += [
        "",
        "Final: every seed at the chosen learning rate, mean ± sample std",
        "",
        "| dataset | optimizer | lr | seeds | test accuracy | val accuracy | val loss (final) |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds in datasets:
        for opt in optimizers:
            if (ds, opt) not in chosen:
                continue
            rs = [
                r
                for r in records
                if (r["dataset"], r["optimizer"], r["lr"]) == (ds, opt, chosen[ds, opt])
            ]
            seeds = sorted(r["seed"] for r in rs)
            lines.append(
                f"| {ds} | {opt} | {chosen[ds, opt]:g} | {','.join(map(str, seeds))} "
                f"| {mean_std([r['test_acc'] for r in rs], mark_single=True)} "
                f"| {mean_std([r['val_acc'] for r in rs], mark_single=True)} "
                f"| {mean_std([r['val_loss'] for r in rs], mark_single=True)} |"
            )
    return "\n".join(lines) + "\n"


def figure(
    client: Any, records: list[dict[str, Any]], chosen: dict[tuple[str, str], float], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in records})
    optimizers = order({r["optimizer"] for r in records}, OPTIMIZER_ORDER)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.6 * len(datasets), 3.6), dpi=100, squeeze=False
    )
    for ax, ds in zip(axes[0], datasets):
        for i, opt in enumerate(optimizers):
            if (ds, opt) not in chosen:
                continue
            rs = [
                r
                for r in records
                if (r["dataset"], r["optimizer"], r["lr"]) == (ds, opt, chosen[ds, opt])
            ]
            curves = []
            for r in rs:
                history = sorted(
                    client.get_metric_history(r["id"], "val/loss"), key=lambda m: m.step
                )
                curves.append([m.value for m in history])
            n = min(len(c) for c in curves)
            curves = np.array([c[:n] for c in curves])
            epochs = np.arange(1, n + 1)
            ax.plot(
                epochs,
                curves.mean(axis=0),
                color=f"C{i}",
                label=f"{opt} (lr {chosen[ds, opt]:g}, {len(rs)} seeds)",
            )
            if len(rs) > 1:
                ax.fill_between(
                    epochs, curves.min(axis=0), curves.max(axis=0), color=f"C{i}", alpha=0.15
                )
        ax.set_yscale("log")
        ax.set_title(ds, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("[128, 64] relu, batch 32: mean over seeds, band = min..max", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, default=HERE, help="folder for learning_curves.png")
    p.add_argument("--chosen", action="store_true", help="print 'dataset optimizer lr' lines only")
    args = p.parse_args(argv)
    uri = args.tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    try:
        client, runs = study_runs(uri, args.experiment, hint=HINT)
        records = [record(r) for r in runs]
    except ReportError as exc:
        print(f"make_table: error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"make_table: error: a run lacks {exc}: not a study_optimizers run", file=sys.stderr)
        return 2
    chosen = choose(records)
    if args.chosen:
        for (ds, opt), lr in sorted(chosen.items()):
            print(ds, opt, f"{lr:g}")
        return 0
    print(tables(records, chosen), end="")
    args.figures.mkdir(parents=True, exist_ok=True)
    figure(client, records, chosen, args.figures / "learning_curves.png")
    print(f"make_table: wrote {args.figures / 'learning_curves.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

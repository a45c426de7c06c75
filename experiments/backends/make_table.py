"""Study 6, backends and dtypes: the table (and a figure) from MLflow.

    python experiments/backends/make_table.py --tracking-uri sqlite:////tmp/mlpx-studies-b/mlflow.db
    python experiments/backends/make_table.py --figures experiments/backends

Reads the FINISHED runs of the experiment ``study_backends`` (one per config: the newest).
For each (backend, device, dtype): the max over seeds of the max relative difference of
``val/loss`` per epoch against the numpy float64 run of the same seed, the final val/loss
and test accuracy, and the time per epoch from the MLflow timestamps (milliseconds) of the
per-epoch ``epoch`` metric, epochs 2..N (the first pays the warm-up): the median epoch and
the mean epoch ((t_N - t_1) / (N - 1), finer than the 1 ms timestamps), each as mean ± std
over the seeds. ``--figures DIR`` writes ``parity_and_speed.png``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlpx.app.report import ReportError, study_runs
from mlpx.app.summary import mean_std

EXPERIMENT = "study_backends"
COMMAND = (
    "mlpx -m experiment=study_backends backend=numpy,torch backend.dtype=float64,float32 "
    "trainer.seed=0,1,2"
)
REFERENCE = ("numpy", "cpu", "float64")


def collect(client: Any, runs: list[Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(backend, device, dtype) -> {seed: {"val_loss": [...], "ms": [...], "test": acc}}."""
    out: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in runs:
        p = r.data.params
        rid = r.info.run_id
        val = [h.value for h in sorted(client.get_metric_history(rid, "val/loss"), key=_step)]
        ends = [h.timestamp for h in sorted(client.get_metric_history(rid, "epoch"), key=_step)]
        device = p.get("backend.device", "None")  # not logged when null (issue 15)
        out[(p["backend.name"], device, p["backend.dtype"])][p["trainer.seed"]] = {
            "val_loss": val,
            "ms": [b - a for a, b in itertools.pairwise(ends)],  # epochs 2..N
            "span_ms": (ends[-1] - ends[0]) / max(len(ends) - 1, 1),
            "test": r.data.metrics["test/accuracy"],
        }
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _step(h: Any) -> int:
    return h.step


def max_rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def order(k: tuple[str, str, str]) -> tuple[int, str, str]:
    rank = {"numpy": 0, "torch": 1, "cupy": 2, "array_api_strict": 3}
    return rank.get(k[0], 9), k[1], "0" if k[2] == "float64" else "1"


def table(data: dict[tuple[str, str, str], dict[str, Any]]) -> str:
    ref = data.get(REFERENCE)
    if ref is None:
        sys.exit("make_table: no numpy float64 runs to compare against; run: " + COMMAND)
    seeds = sorted({s for runs in data.values() for s in runs})
    epochs = len(next(iter(ref.values()))["val_loss"])
    lines = [
        f"{epochs} epochs, seeds {', '.join(seeds)}; reference numpy cpu float64 of the same seed. "
        "Times: mean ± std over seeds of each run's median (and mean) epoch, epochs 2..N.",
        "",
        "| backend | device | dtype | seeds | max rel. diff val/loss | final val/loss "
        "| test accuracy | median ms/epoch | mean ms/epoch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(data, key=order):
        runs = data[key]
        diffs = [max_rel(r["val_loss"], ref[s]["val_loss"]) for s, r in runs.items() if s in ref]
        diff = f"{max(diffs):.1e}" if diffs else "–"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(runs)} | {diff} "
            f"| {mean_std([r['val_loss'][-1] for r in runs.values()], '.5f')} "
            f"| {mean_std([r['test'] for r in runs.values()], '.4f')} "
            f"| {mean_std([_median(r['ms']) for r in runs.values()], '.1f')} "
            f"| {mean_std([r['span_ms'] for r in runs.values()], '.1f')} |"
        )
    return "\n".join(lines)


def figure(data: dict[tuple[str, str, str], dict[str, Any]], folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = data[REFERENCE]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    keys = sorted(data, key=order)
    for i, key in enumerate(k for k in keys if k != REFERENCE):
        for j, seed in enumerate(sorted(set(data[key]) & set(ref))):
            a, b = data[key][seed]["val_loss"], ref[seed]["val_loss"]
            rel = [max(abs(x - y) / abs(y), 1e-18) for x, y in zip(a, b)]
            ax1.plot(
                range(1, len(rel) + 1),
                rel,
                color=f"C{i}",
                lw=1,
                marker="o",
                ms=2,
                label=" ".join(key) if j == 0 else None,
            )
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("|val/loss - numpy float64| / numpy float64")
    ax1.set_title("parity with numpy float64, every seed (0 drawn at 1e-18)", fontsize=9)
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    labels = [f"{k[0]}\n{k[2]}" for k in keys]
    means = [statistics.mean(r["span_ms"] for r in data[k].values()) for k in keys]
    ax2.bar(range(len(keys)), means, color="#6baed6")
    ax2.set_xticks(range(len(keys)))
    ax2.set_xticklabels(labels, fontsize=7)
    ax2.set_ylabel("ms per epoch (mean, epochs 2..N)")
    ax2.set_title("time per epoch, 40 steps of batch 32 (CPU, 1 thread)", fontsize=9)
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path = folder / "parity_and_speed.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")
    p.add_argument("--experiment", default=EXPERIMENT)
    p.add_argument("--figures", type=Path, help="also write parity_and_speed.png here")
    args = p.parse_args(argv)
    try:
        client, runs = study_runs(
            args.tracking_uri, args.experiment, hint=f"run first: {COMMAND}", metric="test/accuracy"
        )
    except ReportError as exc:
        sys.exit(f"make_table: {exc}")
    data = collect(client, runs)
    print(table(data))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        path = figure(data, args.figures)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

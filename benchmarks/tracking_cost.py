"""What MLflow tracking costs a training run: fit() with MlflowTracker against NullTracker.

    python benchmarks/tracking_cost.py [--repeats 5] [--epochs 20] [--every 1 50]
        [--modes none async direct] [--compare-ref GIT_REF] [--log-only 4000]

First logs ``5 * --log-only`` values with no training through each tracker (its own cost per
value, wall and CPU). Then trains the default model (digits, [128, 64] relu, Adam, batch 32)
with the same seed, the trackers alternated within each repeat, and prints for each logging cadence
(`trainer.log_every_n_steps`) and each way of sending metric values the median wall time of
``fit`` + ``flush`` (the buffered values are part of the cost), the median CPU time of the
whole process over the same span (every thread: MLflow's and SQLite's work on background
threads counts), and the ratio of both to ``none``. Creating the run and the store is a
one-off cost reported separately.

Modes:
    none     NullTracker: training alone.
    async    MlflowTracker, the default: batches handed to MLflow's asynchronous logging.
    direct   MlflowTracker(direct_sqlite=True): rows written straight into SQLite's tables.
    thread, thread+direct   (with --compare-ref) the MlflowTracker of an older commit, which
             sent batches from a hand-made background thread (839a066: mlpx/tracking.py or
             mlpx/tracking/__init__.py), without and with its direct writer.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MlflowTracker, NullTracker, prepare_store
from mlpx.train import EarlyStopping, TrainerSettings, fit

REPO = Path(__file__).resolve().parents[1]


def one_run(data: Any, epochs: int, every: int, tracker: Any) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one fit and the flush after it."""
    rng = np.random.default_rng(0)
    net = MLP([data.n_features, 128, 64, data.n_classes], "relu", rng=rng)
    cfg = TrainerSettings(
        epochs=epochs,
        log_every_n_steps=every,
        early_stopping=EarlyStopping(patience=0),
        progress="false",
    )
    t0, c0 = time.perf_counter(), time.process_time()
    fit(net, make_optimizer("adam", lr=1e-3), data, cfg, tracker, rng=rng)
    tracker.flush()  # the buffered metrics are part of the cost
    return time.perf_counter() - t0, time.process_time() - c0


def log_only(tracker: Any, n_steps: int) -> tuple[float, float]:
    """(wall, process CPU) seconds of logging ``5 * n_steps`` values and flushing them, with no
    training: the tracker's own cost, without the training loop's GIL and cores to share."""
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(n_steps):
        tracker.log_metrics({"a": 1.0 * step, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}, step)
    tracker.flush()
    return time.perf_counter() - t0, time.process_time() - c0


def old_tracker_class(ref: str) -> type:
    """MlflowTracker of commit ``ref`` (loaded from ``git show``, as a separate module)."""
    for path in ("mlpx/tracking.py", "mlpx/tracking/__init__.py"):
        shown = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=REPO, capture_output=True, text=True
        )
        if shown.returncode == 0 and "class MlflowTracker" in shown.stdout:
            break
    else:
        sys.exit(f"no MlflowTracker at {ref} (mlpx/tracking.py or mlpx/tracking/__init__.py)")
    file = Path(tempfile.mkdtemp(prefix="mlpx-old-tracking-")) / "mlpx_tracking_old.py"
    file.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("mlpx_tracking_old", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.MlflowTracker


def make_tracker(mode: str, uri: str, name: str, old: type | None) -> Any:
    if mode == "none":
        return NullTracker()
    if mode in ("async", "direct"):
        return MlflowTracker(uri, "bench", name, direct_sqlite=mode == "direct")
    if mode in ("thread", "thread+direct"):
        assert old is not None, "--compare-ref is needed for the thread modes"
        return old(uri, "bench", name, direct_sqlite=mode == "thread+direct")
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--modes", nargs="+", default=["none", "async", "direct"])
    parser.add_argument("--compare-ref", help="also time this commit's tracker (thread modes)")
    parser.add_argument(
        "--log-only", type=int, default=4000, help="steps of 5 values logged without training"
    )
    args = parser.parse_args()
    modes = list(args.modes)
    old = None
    if args.compare_ref:
        old = old_tracker_class(args.compare_ref)
        modes += [m for m in ("thread", "thread+direct") if m not in modes]
    if "none" not in modes:
        modes.insert(0, "none")
    data = load_dataset("digits")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        t0 = time.perf_counter()
        prepare_store(uri, "bench")
        print(f"store + experiment creation: {time.perf_counter() - t0:.2f} s (once)")
        one_run(data, 1, 1, NullTracker())  # warm-up: imports, first allocations
        if args.log_only:
            spent: dict[str, list[tuple[float, float]]] = {m: [] for m in modes[1:]}
            for r in range(args.repeats):
                for mode in modes[1:][r % (len(modes) - 1) :] + modes[1:][: r % (len(modes) - 1)]:
                    tracker = make_tracker(mode, uri, f"{mode}-log-only-{r}", old)
                    spent[mode].append(log_only(tracker, args.log_only))
                    tracker.finish()
            n = 5 * args.log_only
            print(f"logging alone, {n} values, median of {args.repeats}:")
            for mode, times in spent.items():
                w = statistics.median(t[0] for t in times) / n * 1e3
                c = statistics.median(t[1] for t in times) / n * 1e3
                print(f"  {mode:>13}: wall {w:.4f} ms/value, CPU {c:.4f} ms/value")
        for every in args.every:
            wall: dict[str, list[float]] = {m: [] for m in modes}
            cpu: dict[str, list[float]] = {m: [] for m in modes}
            values: dict[str, int] = {}
            for r in range(args.repeats):
                for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:  # rotate order
                    tracker = make_tracker(mode, uri, f"{mode}-every{every}-{r}", old)
                    w, c = one_run(data, args.epochs, every, tracker)
                    wall[mode].append(w)
                    cpu[mode].append(c)
                    if mode != "none":
                        tracker.finish()
                        values[mode] = tracker._state.n_values
            w0, c0 = statistics.median(wall["none"]), statistics.median(cpu["none"])
            print(
                f"log_every_n_steps={every}: median of {args.repeats}, {args.epochs} epochs; "
                f"none: wall {w0:.3f} s, CPU {c0:.3f} s"
            )
            for mode in modes[1:]:
                w, c = statistics.median(wall[mode]), statistics.median(cpu[mode])
                n = values.get(mode, 0)
                per_value = f", {(c - c0) / n * 1e3:.4f} ms CPU/value" if n else ""
                print(
                    f"  {mode:>13}: wall {w:.3f} s ({w / w0:.2f}x), CPU {c:.3f} s "
                    f"({c / c0:.2f}x), {n} values{per_value}"
                )


if __name__ == "__main__":
    main()

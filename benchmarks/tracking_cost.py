"""What MLflow tracking costs a training run: fit() with MlflowTracker against NullTracker.

    python benchmarks/tracking_cost.py [--repeats 5] [--epochs 20] [--every 1 50]

Trains the default model (digits, [128, 64] relu, Adam, batch 32) with the same seed,
alternating the two trackers, and prints the median training time of each and their
ratio, for each logging cadence (`trainer.log_every_n_steps`). Only ``fit`` is timed:
creating the run and the store is a one-off cost reported separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MlflowTracker, NullTracker, prepare_store
from mlpx.train import EarlyStopping, TrainerSettings, fit


def one_run(data, epochs: int, every: int, tracker) -> float:
    rng = np.random.default_rng(0)
    net = MLP([data.n_features, 128, 64, data.n_classes], "relu", rng=rng)
    cfg = TrainerSettings(
        epochs=epochs,
        log_every_n_steps=every,
        early_stopping=EarlyStopping(patience=0),
        progress="false",
    )
    t0 = time.perf_counter()
    fit(net, make_optimizer("adam", lr=1e-3), data, cfg, tracker, rng=rng)
    if hasattr(tracker, "flush"):
        tracker.flush()  # the buffered metrics are part of the cost
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    data = load_dataset("digits")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        t0 = time.perf_counter()
        prepare_store(uri, "bench")
        print(f"store + experiment creation: {time.perf_counter() - t0:.2f} s (once)")
        for every in args.every:
            times: dict[str, list[float]] = {"none": [], "mlflow": []}
            for _ in range(args.repeats):
                times["none"].append(one_run(data, args.epochs, every, NullTracker()))
                tracker = MlflowTracker(uri, "bench", f"every{every}")
                times["mlflow"].append(one_run(data, args.epochs, every, tracker))
                tracker.finish()
            none, mlf = (statistics.median(times[k]) for k in ("none", "mlflow"))
            print(
                f"log_every_n_steps={every:>3}: logger=none {none:.3f} s, "
                f"logger=mlflow {mlf:.3f} s, ratio {mlf / none:.3f} "
                f"(median of {args.repeats}, {args.epochs} epochs)"
            )


if __name__ == "__main__":
    main()

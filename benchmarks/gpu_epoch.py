"""Seconds per training epoch of a 784-512-512-10 MLP on each array backend.

    python benchmarks/gpu_epoch.py [--epochs 3] [--backends numpy torch-cpu torch-cuda cupy]
                                   [--dtype float32] [--n 60000] [--batch-size 256] [--out F]

The data are ``make_classification(n_samples=n, n_features=784, n_informative=100,
n_classes=10, random_state=0)`` (MNIST's shape), standardised, all of it in the training
split. Each backend trains ``MLP([784, 512, 512, 10], "relu")`` with Adam (lr 1e-3, batch
256) through ``mlpx.train.fit`` for ``1 + epochs`` epochs from the same seed: the first
epoch is a warm-up (moving the data to the device, CUDA context, kernel caches), and the
table reports the median of the others. Epochs are timed at fit's end-of-epoch log call
after synchronising the device (fit's per-epoch metrics already force a sync). Backends
whose library or device is missing are skipped with the reason.

Needs numpy, scikit-learn and the backends' libraries; not MLflow, Hydra or OmegaConf.
Prints a Markdown table; ``--out`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if importlib.util.find_spec("mlpx") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlpx.backend import Backend, BackendError, get_backend
from mlpx.data import Dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import NullTracker
from mlpx.train import EarlyStopping, TrainerSettings, fit

# command-line name -> (backend, device)
TARGETS = {
    "numpy": ("numpy", "cpu"),
    "torch-cpu": ("torch", "cpu"),
    "torch-cuda": ("torch", "cuda"),
    "cupy": ("cupy", "cuda"),
    "array_api_strict": ("array_api_strict", "cpu"),
}
WIDTHS = [512, 512]


def make_data(n: int) -> Dataset:
    """``make_classification`` with MNIST's shape, standardised, all in the training split."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=784, n_informative=100, n_classes=10, random_state=0
    )
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    empty_X, empty_y = np.empty((0, X.shape[1])), np.empty((0,), dtype=np.int64)
    return Dataset(
        name="classification",
        X_train=np.ascontiguousarray(X, dtype=np.float64),
        y_train=y.astype(np.int64),
        X_val=empty_X,
        y_val=empty_y,
        X_test=empty_X,
        y_test=empty_y,
        class_names=[str(k) for k in range(10)],
        feature_names=[f"x{i}" for i in range(X.shape[1])],
    )


def synchronize(backend: Backend) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if backend.name == "torch" and backend.device_name.startswith("cuda"):
        import torch

        torch.cuda.synchronize(backend.device)
    elif backend.name == "cupy":
        backend.device.synchronize()


class EpochClock(NullTracker):
    """A NullTracker that notes the time at fit's end-of-epoch log call, device synced."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.stamps: list[float] = []

    def start(self) -> None:
        synchronize(self.backend)
        self.stamps = [time.perf_counter()]

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if "epoch" in metrics:
            synchronize(self.backend)
            self.stamps.append(time.perf_counter())

    def epoch_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


def device_label(backend: Backend) -> str:
    if backend.name == "torch" and backend.device_name.startswith("cuda"):
        import torch

        return f"{backend.device_name} ({torch.cuda.get_device_name(backend.device)})"
    if backend.name == "cupy":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(backend.device.id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else name
        return f"{backend.device_name} ({name})"
    return "cpu"


def time_backend(backend: Backend, data: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    net = MLP(
        [data.n_features, *WIDTHS, data.n_classes],
        "relu",
        rng=rng,
        dtype=args.dtype,
        backend=backend,
    )
    cfg = TrainerSettings(
        epochs=1 + args.epochs,
        batch_size=args.batch_size,
        seed=0,
        log_every_n_steps=10**9,  # no per-step logging: epochs only
        early_stopping=EarlyStopping(patience=0, monitor="train/loss"),
        objective="train/loss",
        direction="minimize",
        progress="false",
    )
    clock = EpochClock(backend)
    clock.start()
    result = fit(
        net, make_optimizer("adam", lr=1e-3), data, cfg, clock, rng=rng, log_grad_norms=False
    )
    seconds = clock.epoch_seconds()
    measured = seconds[1:]  # the first epoch is the warm-up
    median = statistics.median(measured)
    return {
        "backend": backend.name,
        "device": device_label(backend),
        "dtype": args.dtype,
        "seconds_per_epoch": median,
        "samples_per_second": len(data.y_train) / median,
        "warmup_seconds": seconds[0],
        "epoch_seconds": measured,
        "final_train_loss": result.last("train/loss"),
        "final_train_accuracy": result.last("train/accuracy"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    base = next((r["seconds_per_epoch"] for r in rows if r["backend"] == "numpy"), None)
    lines = [
        "| backend | device | dtype | s/epoch (median) | samples/s | speed-up vs numpy CPU |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{base / r['seconds_per_epoch']:.2f}x" if base else "n/a"
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['dtype']} | {r['seconds_per_epoch']:.3f} "
            f"| {r['samples_per_second']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "cupy", "sklearn", "array_api_compat"):
        if importlib.util.find_spec(name) is not None:
            out[name] = getattr(__import__(name), "__version__", "?")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["numpy", "torch-cpu", "torch-cuda", "cupy"],
        choices=list(TARGETS),
        metavar="BACKEND",
        help=f"any of {', '.join(TARGETS)}",
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--n", type=int, default=60000, help="number of samples")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.n < 1 or args.batch_size < 1:
        parser.error("--epochs, --n and --batch-size must be >= 1")

    t0 = time.perf_counter()
    data = make_data(args.n)
    print(
        f"data: {args.n} x 784, 10 classes ({time.perf_counter() - t0:.1f} s); model "
        f"784-{'-'.join(map(str, WIDTHS))}-10 relu, Adam lr 1e-3, batch {args.batch_size}, "
        f"{args.dtype}; 1 warm-up + {args.epochs} timed epochs",
        flush=True,
    )
    rows, skipped = [], {}
    for target in args.backends:
        name, device = TARGETS[target]
        try:
            backend = get_backend(name, device)
        except BackendError as exc:
            skipped[target] = str(exc)
            print(f"skip {target}: {exc}", flush=True)
            continue
        row = time_backend(backend, data, args)
        rows.append(row)
        times = ", ".join(f"{s:.3f}" for s in row["epoch_seconds"])
        print(
            f"{target}: {row['seconds_per_epoch']:.3f} s/epoch (epochs {times}; warm-up "
            f"{row['warmup_seconds']:.3f}); train/loss {row['final_train_loss']:.4f}",
            flush=True,
        )
    print()
    print(markdown(rows))
    if args.out is not None:
        report = {
            "config": {
                "n": args.n,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "dtype": args.dtype,
                "sizes": [784, *WIDTHS, 10],
                "optimizer": {"name": "adam", "lr": 1e-3},
            },
            "versions": versions(),
            "results": rows,
            "skipped": skipped,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

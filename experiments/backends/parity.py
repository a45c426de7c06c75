"""The backends study without Hydra or MLflow: for a machine that has neither (the GPU host).

Trains the run of ``conf/experiment/study_backends.yaml`` (digits, [128, 64] relu,
glorot_uniform, Adam lr 1e-3, batch 32, early stopping off, seed 0) once per
``BACKEND:DEVICE:DTYPE`` with :func:`mlpx.train.fit` and an in-memory tracker, then prints
the max relative difference of ``val/loss`` per epoch against the first run and the median
time per epoch (epochs 2..N: each epoch ends with a host read of its loss, so the clock
sees finished GPU work)::

    python experiments/backends/parity.py --epochs 10 --out /tmp/parity.json \\
        numpy:cpu:float64 numpy:cpu:float32 torch:cuda:float64 torch:cuda:float32 \\
        cupy:cuda:float64 cupy:cuda:float32

``--table results.json`` prints the Markdown table of a saved result again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

STUDY = {
    "dataset": "digits",
    "widths": [128, 64],
    "activation": "relu",
    "init": "glorot_uniform",
    "optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8},
    "batch_size": 32,
    "log_every_n_steps": 50,
}


class EpochClock:
    """A tracker that keeps the metrics (like ``MemoryTracker``) and times every epoch."""

    def __init__(self) -> None:
        from mlpx.tracking import MemoryTracker

        self.inner = MemoryTracker()
        self.epoch_ends: list[float] = []
        self.start = time.perf_counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if "epoch" in metrics:
            self.epoch_ends.append(time.perf_counter())
        self.inner.log_metrics(metrics, step)

    def epoch_seconds(self) -> list[float]:
        ends = [self.start, *self.epoch_ends]
        return [b - a for a, b in itertools.pairwise(ends)]


def study_settings(spec: str, epochs: int, seed: int) -> Any:
    """The study's settings for ``spec`` = ``backend:device:dtype``, checked by
    :mod:`mlpx.app.config` (every key not in ``STUDY`` gets its declared default)."""
    from mlpx.app import config

    backend, device, dtype = spec.split(":")
    return config.Settings(
        model=config.model_settings(
            {"widths": STUDY["widths"], "activation": STUDY["activation"], "init": STUDY["init"]}
        ),
        optimizer=config.optimizer_settings(STUDY["optimizer"]),
        dataset=config.dataset_settings({"name": STUDY["dataset"], "seed": 0}),
        backend=config.backend_settings({"name": backend, "device": device, "dtype": dtype}),
        trainer=config.trainer_settings(
            {
                "epochs": epochs,
                "batch_size": STUDY["batch_size"],
                "seed": seed,
                "log_every_n_steps": STUDY["log_every_n_steps"],
                "early_stopping": {"patience": 0},
                "progress": "false",
            }
        ),
        logger=config.logger_settings({"name": "none"}),
    )


def train_once(spec: str, epochs: int, seed: int) -> dict[str, Any]:
    """One run of the study on ``spec`` = ``backend:device:dtype``; its history and times."""
    from mlpx.app.build import build
    from mlpx.train import fit

    settings = study_settings(spec, epochs, seed)
    built = build(settings)  # backend, data, the seed's Generator, network, optimizer
    clock = EpochClock()
    result = fit(built.model, built.optimizer, built.data, settings.trainer, clock, rng=built.rng)
    secs = clock.epoch_seconds()
    hist = clock.inner.metrics
    return {
        "spec": spec,
        "val_loss": [v for _, v in hist["val/loss"]],
        "train_loss": [v for _, v in hist["train/loss"]],
        "test_accuracy": result.test.get("test/accuracy"),
        "epoch_seconds": secs,
        "median_epoch_s": statistics.median(secs[1:]) if len(secs) > 1 else secs[0],
    }


def max_rel_diff(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(x - y) / np.abs(y)))


def table(results: dict[str, Any]) -> str:
    runs = results["runs"]
    ref = runs[0]
    lines = [
        f"Reference: {ref['spec']}; {results['epochs']} epochs, seed {results['seed']}; "
        f"{results['host']}",
        "",
        "| backend:device:dtype | max rel. diff val/loss vs reference | final val/loss "
        "| test accuracy | median ms/epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['spec']} | {max_rel_diff(r['val_loss'], ref['val_loss']):.1e} "
            f"| {r['val_loss'][-1]:.6f} | {r['test_accuracy']:.4f} "
            f"| {r['median_epoch_s'] * 1e3:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("specs", nargs="*", help="backend:device:dtype; the first is the reference")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the histories and times as JSON")
    p.add_argument("--table", type=Path, help="print the table of a saved JSON and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if not args.specs:
        p.error("give at least one backend:device:dtype")
    host = f"{platform.node() or 'host'}, {platform.processor() or platform.machine()}"
    try:
        import torch

        if torch.cuda.is_available():
            host += f", {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    except ImportError:
        pass
    results: dict[str, Any] = {"epochs": args.epochs, "seed": args.seed, "host": host, "runs": []}
    for spec in args.specs:
        try:
            results["runs"].append(train_once(spec, args.epochs, args.seed))
        except Exception as exc:  # report a missing backend and go on with the others
            print(f"parity: {spec} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        r = results["runs"][-1]
        print(f"parity: {spec} done, median {r['median_epoch_s'] * 1e3:.1f} ms/epoch", flush=True)
    if not results["runs"]:
        return 1
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

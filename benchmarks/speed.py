"""How fast mlpx trains an MLP on the CPU, against scikit-learn and PyTorch in the same run.

    python benchmarks/speed.py [--quick] [--out results/speed.json] [--md results/speed.md]
                               [--epochs 5] [--runs 5] [--problems a b]
                               [--peers mlpx sklearn torch] [--no-tracking] [--no-startup]
                               [--openblas-coretype NAME] [--jit auto|true|false]

Problems (issue 7):

* (a) ``make_classification(n_samples=60000, n_features=784, n_informative=100,
  n_classes=10, random_state=0)``, standardised, all of it for training; hidden [512, 512],
  relu, Adam lr 1e-3, batch 256; float32 and float64. One warm-up epoch per tool, then
  ``--epochs`` timed ones; the table shows the median timed epoch.
* (b) scikit-learn's digits (1797 x 64), standardised; hidden [64], relu, Adam lr 1e-3,
  batch 32, 50 epochs; float64, every tool's default. One warm-up run (2 epochs), then
  ``--runs`` timed 50-epoch runs; the table shows the median run.

Peers: mlpx (``mlpx.train.fit``, a tracker that records nothing), scikit-learn's
``MLPClassifier`` (the same network, ``alpha=0``, ``tol=0``, no early stopping,
``shuffle=True``) and PyTorch on the CPU (``nn.Sequential``, ``torch.optim.Adam`` with its
defaults, ``nn.CrossEntropyLoss``, ``torch.set_num_threads`` = the CPUs NumPy's BLAS
uses). Each tool runs in a process of its own (its own thread pools and peak memory), and
the processes take turns epoch by epoch (run by run for (b)), in a rotating order, with a
0.3 s pause between turns (OpenBLAS threads spin ~0.1 s after a GEMM), so that a change of
the machine's load hits all of them alike; mlpx's ``fit`` runs in a thread that its
tracker pauses at the end of every epoch. scikit-learn's epochs of (a) are
``partial_fit`` calls: ``fit`` with ``warm_start=True, max_iter=1`` would build a new Adam
optimizer at every call (moments and step count back to zero), a different algorithm;
``partial_fit`` keeps the optimizer and makes exactly one shuffled pass. Its input check
(X finite) is part of each of its epochs, as it is of every ``fit``.

A fourth process samples the GEMM ceiling in the same turns: NumPy matmul GFLOP/s on the
nine products of one training step (forward ``f W^T``, ``delta_W = delta_a^T f`` and
``delta_f = delta_a W`` of every layer) and on a 2048^3 product. A training epoch's
GFLOP/s counts ``6 n sum_l p_(l-1) p_l``, the usual "model FLOPs"; no tool computes
``delta_x``, so that count is ~20% above the arithmetic really done on (a), and the
fraction of the ceiling is that rate over the measured rate of the nine products.

mlpx runs with ``backend.jit`` = ``--jit`` (default ``auto``: the compiled kernels of
mlpx/fast/kernels.py when Numba is installed, ``pip install -e ".[jit]"``); the one-off cost of
the kernels in a fresh process (``import numba``, loading them from Numba's disk cache, or
compiling them into an empty one) is measured separately and shown under the table.

Peak memory is each tool's process high-water resident set at the end (``VmHWM``;
``ru_maxrss`` also counts what the parent process passed down) minus the bytes of the
data it loaded. Also measured: MLflow tracking with per-step gradient norms
(``MlflowTracker`` on a fresh SQLite store, ``log_every_n_steps=1``, and the default 50)
against no tracking on (a) float32: four fits in one process on the same data (two
without tracking, their mean the baseline and their paired difference the noise floor),
taking turns epoch by epoch for at least 8 rounds (each epoch's time includes sending its
metrics: the tracker is flushed before the epoch ends; separate processes differed by up
to 8% from one another here, more than the cost being measured); the start-up time of
``mlpx --help``. ``--openblas-coretype`` overrides the GEMM kernels of NumPy's OpenBLAS
for an experiment (the environment may pin them: ``OPENBLAS_CORETYPE``).

Needs numpy and scikit-learn; torch and mlflow are optional (their rows are skipped with
the reason). ``--quick`` shrinks everything (a 512-sample problem (a) with two hidden
layers of 32, 2-epoch runs of (b)) to run in well under a minute, most of it the workers'
start-up: a smoke test, not a measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("mlpx", "sklearn", "torch")
# Targets of issue 7: mlpx's time over the peer's, measured in the same run.
TARGETS = {
    ("a", "float32", "torch"): 0.75,
    ("a", "float32", "sklearn"): 0.6,
    ("a", "float64", "torch"): 1.0,  # "ahead of": strictly below
    ("a", "float64", "sklearn"): 1.0,
    ("b", "float64", "sklearn"): 1 / 3,
    ("b", "float64", "torch"): 1 / 6,
}
GEMM_FRACTION_TARGET = 0.70
TRACKING_TARGET = 0.05
STARTUP_TARGET = 1.5
MEMORY_FACTOR = 1.5


# --------------------------------------------------------------------------- problems


def problem_spec(name: str, quick: bool) -> dict[str, Any]:
    """Sizes, batch and dtypes of problem (a) or (b)."""
    if name == "a":
        return {
            "name": "a",
            "what": "make_classification 60000 x 784, 10 classes",
            "n": 512 if quick else 60000,
            "sizes": [784, 32, 32, 10] if quick else [784, 512, 512, 10],
            "batch": 256,
            "dtypes": ["float32", "float64"],
        }
    return {
        "name": "b",
        "what": "digits 1797 x 64, 10 classes",
        "n": 1797,
        "sizes": [64, 64, 10],
        "batch": 32,
        "epochs": 2 if quick else 50,
        "dtypes": ["float64"],
    }


def flops_per_epoch(spec: dict[str, Any]) -> float:
    """``6 n sum_l p_(l-1) p_l``: forward, delta_W and delta_f GEMMs of every layer."""
    return 6.0 * spec["n"] * sum(p * q for p, q in itertools.pairwise(spec["sizes"]))


def prepare_data(folder: Path, quick: bool) -> dict[str, Any]:
    """Write the standardised data of both problems as .npy files (X per dtype, y)."""
    import numpy as np
    from sklearn.datasets import load_digits, make_classification

    a = problem_spec("a", quick)
    X, y = make_classification(
        n_samples=a["n"], n_features=784, n_informative=100, n_classes=10, random_state=0
    )
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    for dtype in a["dtypes"]:
        np.save(folder / f"a_X_{dtype}.npy", np.ascontiguousarray(X, dtype=dtype))
    np.save(folder / "a_y.npy", y.astype(np.int64))
    X, y = load_digits(return_X_y=True)
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    np.save(folder / "b_X_float64.npy", np.ascontiguousarray(X, dtype=np.float64))
    np.save(folder / "b_y.npy", y.astype(np.int64))
    return {}


def load(folder: Path, problem: str, dtype: str) -> tuple[Any, Any]:
    import numpy as np

    return np.load(folder / f"{problem}_X_{dtype}.npy"), np.load(folder / f"{problem}_y.npy")


def threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_status() -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident set of this process, in bytes."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:  # not Linux: ru_maxrss only
        pass
    out.setdefault("VmHWM", out["ru_maxrss"])
    out.setdefault("VmRSS", out["ru_maxrss"])
    return out


# --------------------------------------------------------------------------- the tools


def mlpx_data(spec: dict[str, Any], X: Any, y: Any) -> Any:
    """All of (X, y) as the training split of an mlpx Dataset."""
    import numpy as np

    from mlpx.data import Dataset

    empty_X, empty_y = np.empty((0, X.shape[1]), X.dtype), np.empty((0,), np.int64)
    return Dataset(
        name=spec["name"],
        X_train=X,
        y_train=y,
        X_val=empty_X,
        y_val=empty_y,
        X_test=empty_X,
        y_test=empty_y,
        class_names=[str(k) for k in range(10)],
        feature_names=[f"x{i}" for i in range(X.shape[1])],
    )


def mlpx_fit(
    spec: dict[str, Any],
    data: Any,
    epochs: int,
    tracker: Any = None,
    every: int = 10**9,
    grad_norms: bool = False,
    seed: int = 0,
    jit: str = "auto",
) -> Any:
    """``mlpx.train.fit`` of the problem's network for ``epochs`` epochs (``jit``:
    ``backend.jit``, the compiled kernels of mlpx/fast/kernels.py)."""
    import numpy as np

    from mlpx.nn.model import MLP
    from mlpx.nn.optim import make_optimizer
    from mlpx.train import EarlyStopping, TrainerSettings, fit

    rng = np.random.default_rng(seed)
    net = MLP(spec["sizes"], "relu", rng=rng, dtype=str(data.X_train.dtype), jit=jit)
    cfg = TrainerSettings(
        epochs=epochs,
        batch_size=spec["batch"],
        seed=seed,
        log_every_n_steps=every,
        early_stopping=EarlyStopping(patience=0, monitor="train/loss"),
        objective="train/loss",
        direction="minimize",
        progress="false",
    )
    opt = make_optimizer("adam", lr=1e-3, jit=jit)
    return fit(net, opt, data, cfg, tracker, rng=rng, log_grad_norms=grad_norms)


class MlpxEpochs:
    """``mlpx_fit`` in a thread that its tracker pauses at the end of every epoch.

    ``epoch()`` lets it run one epoch and returns the seconds it took (for the first call,
    fit's set-up included); metrics go on to ``inner`` (an MLflow tracker), flushed before
    the epoch ends, so that an epoch's time includes sending its metrics.
    """

    def __init__(self, spec: dict[str, Any], data: Any, epochs: int, **kwargs: Any) -> None:
        from mlpx.tracking import NullTracker

        self.inner = kwargs.pop("inner", None)
        self._go = threading.Semaphore(0)
        self._paused = threading.Semaphore(0)
        self._end = 0.0
        self.finished = False
        self.error: BaseException | None = None
        self.result: Any = None
        outer = self

        class Pause(NullTracker):
            def log_metrics(self, metrics: dict[str, float], step: int) -> None:
                if outer.inner is not None:
                    outer.inner.log_metrics(metrics, step=step)
                if "epoch" in metrics:
                    if outer.inner is not None:
                        outer.inner.flush()
                    outer._end = time.perf_counter()
                    outer._paused.release()
                    outer._go.acquire()

        def main() -> None:
            try:
                self.result = mlpx_fit(spec, data, epochs, Pause(), **kwargs)
            except BaseException as exc:  # re-raised by epoch()
                self.error = exc
            finally:
                self.finished = True
                self._end = time.perf_counter()
                self._paused.release()

        self._thread = threading.Thread(target=main, daemon=True)

    def epoch(self) -> float:
        start = time.perf_counter()
        if not self._thread.is_alive() and not self.finished:
            self._thread.start()
        else:
            self._go.release()
        self._paused.acquire()
        if self.error is not None:
            raise self.error
        if self.finished:
            raise RuntimeError("fit ended before the epoch that was asked for")
        return self._end - start

    def close(self) -> float:
        """Let fit finish; the final loss."""
        while not self.finished:
            self._go.release()
            self._paused.acquire()
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result.last("train/loss")


def sklearn_model(spec: dict[str, Any], max_iter: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=tuple(spec["sizes"][1:-1]),
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=spec["batch"],
        learning_rate_init=1e-3,
        max_iter=max_iter,
        tol=0.0,
        n_iter_no_change=max_iter + 1,
        early_stopping=False,
        shuffle=True,
        random_state=0,
    )


class SklearnEpochs:
    """One ``partial_fit`` call per epoch: the same Adam optimizer throughout."""

    def __init__(self, spec: dict[str, Any], X: Any, y: Any) -> None:
        import numpy as np

        self.model, self.X, self.y = sklearn_model(spec, 1), X, y
        self.classes = np.arange(10)

    def epoch(self) -> float:
        t0 = time.perf_counter()
        self.model.partial_fit(self.X, self.y, classes=self.classes)
        return time.perf_counter() - t0

    def close(self) -> float:
        return float(self.model.loss_)


def sklearn_run(spec: dict[str, Any], X: Any, y: Any, epochs: int) -> tuple[float, float]:
    """``MLPClassifier.fit`` for ``epochs`` epochs: (seconds, final loss)."""
    model = sklearn_model(spec, epochs)
    t0 = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - t0, float(model.loss_)


class TorchEpochs:
    """The usual PyTorch loop: index a shuffled batch, forward, loss, backward, step."""

    def __init__(self, spec: dict[str, Any], X: Any, y: Any, n_threads: int) -> None:
        import torch

        torch.set_num_threads(n_threads)
        self.torch = torch
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.batch = spec["batch"]
        torch.manual_seed(0)
        layers: list[Any] = []
        sizes = spec["sizes"]
        for i, (p, q) in enumerate(itertools.pairwise(sizes)):
            layers.append(torch.nn.Linear(p, q, dtype=self.X.dtype))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.gen = torch.Generator().manual_seed(0)
        self.loss = math.nan

    def epoch(self) -> float:
        t0 = time.perf_counter()
        X, y, B, net, opt, loss_fn = self.X, self.y, self.batch, self.net, self.opt, self.loss_fn
        n = X.shape[0]
        perm = self.torch.randperm(n, generator=self.gen)
        total = 0.0
        for s in range(0, n, B):
            idx = perm[s : s + B]
            loss = loss_fn(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        self.loss = total / n
        return time.perf_counter() - t0

    def close(self) -> float:
        return self.loss


def torch_run(spec: dict[str, Any], X: Any, y: Any, epochs: int, n_threads: int) -> Any:
    t0 = time.perf_counter()
    run = TorchEpochs(spec, X, y, n_threads)
    for _ in range(epochs):
        run.epoch()
    return time.perf_counter() - t0, run.loss


class Gemm:
    """NumPy matmul on the nine products of one training step, and on a square product."""

    def __init__(self, spec: dict[str, Any], dtype: str, square: int, steps: int) -> None:
        import numpy as np

        self.np = np
        self.steps = steps
        self.samples: list[dict[str, float]] = []
        B, sizes = spec["batch"], spec["sizes"]
        rng = np.random.default_rng(0)
        pairs = list(itertools.pairwise(sizes))
        self.Ws = [rng.standard_normal((q, p)).astype(dtype) for p, q in pairs]
        self.fs = [rng.standard_normal((B, p)).astype(dtype) for p in sizes]
        self.outs = [
            (np.empty((B, q), dtype), np.empty((q, p), dtype), np.empty((B, p), dtype))
            for p, q in pairs
        ]
        self.flops = 6.0 * B * sum(p * q for p, q in pairs)
        self.steps_per_epoch = math.ceil(spec["n"] / B)
        self.square = square
        self.A = rng.standard_normal((square, square)).astype(dtype)
        self.C = np.empty_like(self.A)

    def step(self, with_dx: bool = True) -> None:
        matmul = self.np.matmul
        for i, (W, (a, dW, df)) in enumerate(zip(self.Ws, self.outs)):
            matmul(self.fs[i], W.T, out=a)  # forward
            matmul(self.fs[i + 1].T, self.fs[i], out=dW)  # delta_W = delta_a^T f_prev
            if i > 0 or with_dx:
                matmul(self.fs[i + 1], W, out=df)  # delta_f_prev = delta_a W

    def sample(self, steps: int) -> dict[str, float]:
        """Seconds per step of the nine and of the eight (no delta_x) products, GFLOP/s."""
        self.step()
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(True)
        nine = (time.perf_counter() - t0) / steps
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(False)
        eight = (time.perf_counter() - t0) / steps
        t0 = time.perf_counter()
        self.np.matmul(self.A, self.A, out=self.C)
        square = time.perf_counter() - t0
        return {
            "layer_gflops": self.flops / nine / 1e9,
            "square_gflops": 2.0 * self.square**3 / square / 1e9,
            "gemm_seconds_per_epoch": eight * self.steps_per_epoch,
        }

    def epoch(self) -> float:
        """One sample, taken when the tools take their turns (the first is a warm-up)."""
        t0 = time.perf_counter()
        self.samples.append(self.sample(self.steps))
        return time.perf_counter() - t0

    def close(self) -> float:
        return math.nan

    def summary(self) -> dict[str, Any]:
        keys = ("layer_gflops", "square_gflops", "gemm_seconds_per_epoch")
        timed = self.samples[1:] or self.samples
        return {k: statistics.median(x[k] for x in timed) for k in keys} | {
            "samples": timed,
            "square_size": self.square,
            "blas": blas_info(),
        }


def blas_info() -> dict[str, Any]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {
        k: v
        for pool in threadpool_info()
        if pool.get("user_api") == "blas" and pool.get("internal_api") != "mkl"
        for k, v in pool.items()
        if k in ("internal_api", "version", "num_threads", "architecture")
    }


# --------------------------------------------------------------------------- workers
#
# Every tool runs in a process of its own (its own thread pools, its own peak memory) that
# waits for commands on stdin: the parent makes the tools take turns, epoch by epoch (run
# by run for (b)), so that a change of the machine's load hits all of them alike.


def make_tool(job: dict[str, Any], X: Any, y: Any) -> Any:
    """What one worker process runs: an object with ``epoch()`` or ``run(epochs)``."""
    spec = problem_spec(job["problem"], job["quick"])
    tool = job["tool"]
    if tool == "gemm":
        return Gemm(spec, job["dtype"], 256 if job["quick"] else 2048, job["gemm_steps"])
    if spec["name"] == "b":
        return WholeRuns(spec, tool, X, y, job["threads"], job.get("jit", "auto"))
    if tool == "tracking":
        return TrackingRuns(spec, X, y, job)
    if tool == "mlpx":
        data = mlpx_data(spec, X, y)
        return MlpxEpochs(spec, data, 1 + job["epochs"], jit=job.get("jit", "auto"))
    if tool == "sklearn":
        return SklearnEpochs(spec, X, y)
    return TorchEpochs(spec, X, y, job["threads"])


class TrackingRuns:
    """The tracking comparison: four ``mlpx_fit`` runs of (a) in one process, on the same
    data: two without tracking, MLflow with per-step gradient norms every step, and every
    50 steps. ``epoch()`` runs one epoch of each, in a rotating order with a pause before
    each, and returns their seconds: the runs differ only in their tracking, not in their
    process (memory layout, imports) or in when they ran (load drifts in minutes; these
    epochs are seconds apart)."""

    KINDS: ClassVar[dict[str, int]] = {"none": 0, "none_2": 0, "every_1": 1, "every_50": 50}

    def __init__(self, spec: dict[str, Any], X: Any, y: Any, job: dict[str, Any]) -> None:
        from mlpx.tracking import MlflowTracker

        data = mlpx_data(spec, X, y)
        self.pause = job["pause"]
        self.rounds = 0
        self.runs: dict[str, MlpxEpochs] = {}
        for name, every in self.KINDS.items():  # every: log_every_n_steps (0: no tracking)
            kwargs: dict[str, Any] = {"jit": job.get("jit", "auto")}
            if every:
                kwargs |= {"every": every, "grad_norms": True}
                kwargs["inner"] = MlflowTracker(job["uri"], "speed", name)
            self.runs[name] = MlpxEpochs(spec, data, 1 + job["epochs"], **kwargs)

    def epoch(self) -> dict[str, float]:
        names = list(self.runs)
        k = self.rounds % len(names)
        self.rounds += 1
        out = {}
        for name in names[k:] + names[:k]:
            time.sleep(self.pause)  # OpenBLAS's threads go to sleep between the runs
            out[name] = self.runs[name].epoch()
        return out

    def close(self) -> dict[str, Any]:
        """Let every fit finish; end the MLflow runs (timed: what was left to send)."""
        out: dict[str, Any] = {}
        for name, run in self.runs.items():
            out[name] = {"final_loss": run.close()}
            if run.inner is not None:
                t0 = time.perf_counter()
                run.inner.finish()
                out[name]["finish_seconds"] = time.perf_counter() - t0
        return out


class WholeRuns:
    """Problem (b): each ``run(epochs)`` trains a new network for ``epochs`` epochs."""

    def __init__(
        self, spec: dict[str, Any], tool: str, X: Any, y: Any, n_threads: int, jit: str = "auto"
    ):
        self.spec, self.tool, self.X, self.y, self.threads = spec, tool, X, y, n_threads
        self.jit = jit
        self.data = mlpx_data(spec, X, y) if tool == "mlpx" else None
        self.loss = math.nan
        if tool == "sklearn":
            import warnings

            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", ConvergenceWarning)

    def run(self, epochs: int) -> float:
        if self.tool == "mlpx":
            t0 = time.perf_counter()
            result = mlpx_fit(self.spec, self.data, epochs, jit=self.jit)
            seconds, self.loss = time.perf_counter() - t0, result.last("train/loss")
        elif self.tool == "sklearn":
            seconds, self.loss = sklearn_run(self.spec, self.X, self.y, epochs)
        else:
            seconds, self.loss = torch_run(self.spec, self.X, self.y, epochs, self.threads)
        return seconds

    def close(self) -> float:
        return self.loss


def serve(job: dict[str, Any]) -> None:
    """A worker process: set up, say READY, then answer commands until ``close``."""
    if job.get("mlpx_path"):
        sys.path.insert(0, job["mlpx_path"])
    elif importlib.util.find_spec("mlpx") is None:  # a checkout that is not installed
        sys.path.insert(0, str(ROOT))
    folder = Path(job["folder"])

    def reply(tag: str, payload: dict[str, Any]) -> None:
        sys.stdout.write(f"{tag} {json.dumps(payload)}\n")
        sys.stdout.flush()

    if job["tool"] == "prepare":
        reply("RESULT", prepare_data(folder, job["quick"]))
        return
    # the libraries first, so that the data's size is all the difference that follows
    if job["tool"] == "mlpx":
        import mlpx.train  # noqa: F401
    elif job["tool"] == "sklearn":
        import sklearn.neural_network  # noqa: F401
    elif job["tool"] == "torch":
        import torch  # noqa: F401
    import numpy as np

    imported = memory_status()
    if job["tool"] == "gemm":  # random operands of the layer shapes: no data
        X = y = np.empty(0)
    else:
        X, y = load(folder, job["problem"], job["dtype"])
    tool = make_tool(job, X, y)
    reply("READY", {})
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "epoch":
            reply("DONE", {"seconds": tool.epoch()})
        elif command["cmd"] == "run":
            reply("DONE", {"seconds": tool.run(command["epochs"])})
        else:
            closed = tool.close()
            result: dict[str, Any]
            if isinstance(tool, Gemm):
                result = tool.summary()
            elif isinstance(tool, TrackingRuns):
                result = {"runs": closed}
            else:
                result = {"final_loss": closed}
            peak = memory_status()
            result["memory"] = {
                "data_bytes": int(X.nbytes + y.nbytes),
                "rss_after_imports_bytes": imported["VmRSS"],
                "peak_rss_bytes": peak["VmHWM"],
                "ru_maxrss_bytes": peak["ru_maxrss"],
            }
            reply("RESULT", result)
            return


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, job: dict[str, Any], timeout: float) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
        self.name = job["tool"]
        self.timeout = timeout
        # stderr to a file: a full pipe would block the worker
        self.log = Path(job["folder"]) / f"{self.name}-{job.get('every', 0)}-{time.time_ns()}.err"
        env = {**os.environ, **job.get("env", {})}
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
        self.expect("READY")

    def expect(self, tag: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])
        self.proc.wait(timeout=self.timeout)
        err = " | ".join(self.log.read_text().strip().splitlines()[-8:])
        raise RuntimeError(f"{self.name} worker failed ({self.proc.returncode}): {err}")

    def send(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.expect("RESULT" if command["cmd"] == "close" else "DONE")

    def close(self) -> dict[str, Any]:
        result = self.send(cmd="close")
        self.proc.wait(timeout=self.timeout)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def prepare(base: dict[str, Any], timeout: float) -> None:
    job = {**base, "tool": "prepare"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError("preparing the data failed: " + proc.stderr.strip()[-500:])


def take_turns(
    workers: dict[str, Worker], rounds: int, command: dict[str, Any], pause: float
) -> dict[str, list[float]]:
    """``rounds`` rounds of ``command`` to every worker, in a rotating order."""
    names = list(workers)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(pause)  # idle BLAS/OpenMP threads of the previous tool go to sleep
            seconds[name].append(workers[name].send(**command)["seconds"])
    return seconds


# --------------------------------------------------------------------------- the report


def available(peer: str) -> str | None:
    """None when the peer can run here, else why not."""
    module = {"mlpx": "numpy", "sklearn": "sklearn", "torch": "torch"}[peer]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out: dict[str, Any] = {
        "cpu": cpu,
        "cpus": threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for name, dist in (
        ("numpy", "numpy"),
        ("sklearn", "scikit-learn"),
        ("torch", "torch"),
        ("mlflow", "mlflow"),
        ("numba", "numba"),
    ):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            pass
    try:
        out["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def row_a(spec: dict[str, Any], seconds: list[float], gemm: dict[str, Any]) -> dict[str, Any]:
    per_epoch = statistics.median(seconds)
    gflops = flops_per_epoch(spec) / per_epoch / 1e9
    return {
        "seconds_per_epoch": per_epoch,
        "epoch_seconds": seconds,
        "samples_per_second": spec["n"] / per_epoch,
        "gflops": gflops,
        "fraction_of_layer_ceiling": gflops / gemm["layer_gflops"],
        "fraction_of_square_ceiling": gflops / gemm["square_gflops"],
    }


def row_b(spec: dict[str, Any], seconds: list[float]) -> dict[str, Any]:
    total = statistics.median(seconds)
    per_epoch = total / spec["epochs"]
    return {
        "seconds_total": total,
        "run_seconds": seconds,
        "epochs": spec["epochs"],
        "seconds_per_epoch": per_epoch,
        "samples_per_second": spec["n"] / per_epoch,
        "gflops": flops_per_epoch(spec) / per_epoch / 1e9,
    }


def paired_ratio(mine: list[float], theirs: list[float]) -> float:
    """Median of mlpx's time over the peer's, measurement by measurement (robust to drift)."""
    return statistics.median(a / b for a, b in zip(mine, theirs))


def startup_time(args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    """Median wall time of ``mlpx --help`` in a fresh process (after one warm-up run)."""
    script = Path(sys.executable).with_name("mlpx")
    env = dict(os.environ)
    if args.mlpx_path or not script.exists():
        cmd = [sys.executable, "-m", "mlpx", "--help"]
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.mlpx_path or str(ROOT), env.get("PYTHONPATH")) if p
        )
    else:
        cmd = [str(script), "--help"]
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed: {proc.stderr.strip()[-300:]}")
        if i > 0:  # the first run fills the disk cache
            times.append(elapsed)
    return {"command": shlex.join(cmd), "seconds": statistics.median(times), "runs": times}


def jit_startup(args: argparse.Namespace, repeats: int) -> dict[str, Any]:
    """What the compiled kernels cost a fresh process before its first step: ``import
    numba`` and loading (or compiling) every kernel for float32 and float64, timed with
    Numba's on-disk cache (the usual case) and with an empty cache folder (a new
    environment: everything is compiled). Medians of ``repeats`` fresh processes."""
    code = (
        "import sys, time\n"
        "if sys.argv[1]: sys.path.insert(0, sys.argv[1])\n"
        "import numpy as np\n"
        "from mlpx.fast.step import FastStep\n"
        "from mlpx.nn.model import MLP\n"
        "from mlpx.nn.optim import make_optimizer\n"
        "t0 = time.perf_counter()\n"
        "for dt in ('float32', 'float64'):\n"
        "    net = MLP([4, 3, 2], 'relu', seed=0, dtype=dt, jit='true')\n"
        "    step = FastStep(net, make_optimizer('adam', jit='true'))\n"
        "    X, y = np.ones((2, 4), dt), np.array([0, 1])\n"
        "    step.train_batch(X, y, np.array([0, 1]))\n"
        "    step.update()\n"
        "print(time.perf_counter() - t0)\n"
    )
    env = dict(os.environ)
    path = args.mlpx_path or ("" if importlib.util.find_spec("mlpx") else str(ROOT))
    out: dict[str, Any] = {}
    for label, cold in (("cached", False), ("compiled", True)):
        times = []
        for i in range(repeats + (0 if cold else 1)):
            with tempfile.TemporaryDirectory(prefix="mlpx-numba-") as cache:
                if cold:
                    env["NUMBA_CACHE_DIR"] = cache
                proc = subprocess.run(
                    [sys.executable, "-c", code, path],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
            if proc.returncode != 0:
                raise RuntimeError(f"the JIT start-up probe failed: {proc.stderr.strip()[-300:]}")
            if cold or i > 0:  # (the first cached run may still have to fill the cache)
                times.append(float(proc.stdout.strip().splitlines()[-1]))
        out[label] = {"seconds": statistics.median(times), "runs": times}
    return out


def target_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 7 with the measured value and whether it holds."""
    rows: list[dict[str, Any]] = []

    def add(target: str, value: float, limit: float, holds: bool, at_least: bool = False) -> None:
        rows.append(
            {"target": target, "value": value, "limit": limit, "holds": holds}
            | ({"at_least": True} if at_least else {})
        )

    res = report["results"]
    for (problem, dtype, peer), limit in TARGETS.items():
        tools = res.get(problem, {}).get(dtype, {})
        if "mlpx" in tools and peer in tools:
            ratio = tools[peer]["mlpx_ratio"]
            holds = ratio < limit if limit == 1.0 else ratio <= limit
            add(f"({problem}) {dtype}: mlpx time / {peer}'s", ratio, limit, holds)
    mine = res.get("a", {}).get("float32", {}).get("mlpx")
    if mine:
        value = mine["fraction_of_layer_ceiling"]
        add(
            "(a) float32: mlpx GFLOP/s / GEMM ceiling (layer shapes)",
            value,
            GEMM_FRACTION_TARGET,
            value >= GEMM_FRACTION_TARGET,
            at_least=True,
        )
    for problem, by_dtype in report.get("memory", {}).items():
        for dtype, tools in by_dtype.items():
            if "mlpx" not in tools:
                continue
            mine = tools["mlpx"]
            for peer in ("sklearn", "torch"):
                if peer in tools:
                    allowed = mine["data_bytes"] + MEMORY_FACTOR * tools[peer]["beyond_data_bytes"]
                    add(
                        f"({problem}) {dtype}: mlpx peak memory / (data + 1.5 x {peer}'s "
                        "beyond its data)",
                        mine["peak_rss_bytes"] / allowed,
                        1.0,
                        mine["peak_rss_bytes"] <= allowed,
                    )
    track = report.get("tracking")
    if track:
        cost = track["every_1"]["cost"]
        add(
            "(a) float32: cost of MLflow tracking with per-step gradient norms",
            cost,
            TRACKING_TARGET,
            cost <= TRACKING_TARGET,
        )
    startup = report.get("startup")
    if startup:
        value = startup["seconds"]
        add("`mlpx --help` start-up (s)", value, STARTUP_TARGET, value <= STARTUP_TARGET)
    return rows


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    versions = ", ".join(
        f"{k} {m[k]}" for k in ("numpy", "sklearn", "torch", "mlflow", "numba") if k in m
    )
    jit = report["config"].get("jit", "auto")
    kernels_on = jit == "true" or (jit == "auto" and "numba" in m)
    kernels = f"mlpx `backend.jit={jit}`: compiled kernels {'on' if kernels_on else 'off'}"

    info = next(iter(report.get("gemm", {}).values()), {}).get("blas", {})
    blas = " ".join(str(info[k]) for k in ("internal_api", "version", "architecture") if k in info)
    pins = [
        f"{name}={report['config'][key]}"
        for name, key in (
            ("OPENBLAS_CORETYPE", "openblas_coretype"),
            ("OPENBLAS_L2_SIZE", "openblas_l2_size"),
        )
        if report["config"].get(key)
    ]
    blas = (blas or "?") + (f" ({', '.join(pins)})" if pins else " (no OPENBLAS_* pins)")
    lines = [
        f"Command: `{report['command']}`  ",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['platform']}; Python {m['python']}, "
        f"{versions}  ",
        f"NumPy's BLAS: {blas}; load average (1, 5, 15 min) before: {report['load_before']}, "
        f"after: {report['load_after']}; {report['seconds']:.0f} s in all; {kernels}.",
        "",
        "| problem | dtype | tool | s/epoch | samples/s | GFLOP/s | of GEMM ceiling "
        "(layers / 2048³) | peak MiB − data | mlpx time ÷ tool's (paired) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    mem = report.get("memory", {})
    for problem, by_dtype in report["results"].items():
        for dtype, tools in by_dtype.items():
            for tool in PEERS:
                if tool not in tools:
                    continue
                r = tools[tool]
                frac = ""
                if "fraction_of_layer_ceiling" in r:
                    frac = (
                        f"{r['fraction_of_layer_ceiling']:.0%} / "
                        f"{r['fraction_of_square_ceiling']:.0%}"
                    )
                ratio = ""
                if "mlpx_ratio" in r:
                    ratio = f"{r['mlpx_ratio']:.2f} ({r['mlpx_ratio_paired']:.2f})"
                seconds = f"{r['seconds_per_epoch']:.3f}"
                if problem == "b":
                    seconds += f" ({r['seconds_total']:.2f} for {r['epochs']})"
                beyond = mem.get(problem, {}).get(dtype, {}).get(tool, {}).get("beyond_data_bytes")
                lines.append(
                    f"| ({problem}) | {dtype} | {tool} | {seconds} | "
                    f"{r['samples_per_second']:,.0f} | {r['gflops']:.1f} | {frac} | "
                    f"{mib(beyond) if beyond is not None else ''} | {ratio} |"
                )
            gemm = report.get("gemm", {}).get(dtype) if problem == "a" else None
            if gemm:
                lines.append(
                    f"| ({problem}) | {dtype} | GEMM ceiling | "
                    f"{gemm['gemm_seconds_per_epoch']:.3f} (the GEMMs alone) | | "
                    f"{gemm['layer_gflops']:.1f} (layers), {gemm['square_gflops']:.1f} "
                    f"({gemm['square_size']}³) | | | |"
                )
    track = report.get("tracking")
    if track:
        lines += [
            "",
            "| (a) float32, mlpx | s/epoch | cost vs none (paired) | final flush (s) |",
            "|---|---:|---:|---:|",
            f"| no tracking (two workers; the second vs the first, paired: "
            f"{track['none']['noise']:+.1%}) | {track['none']['seconds_per_epoch']:.3f} | | |",
        ]
        for key in ("every_1", "every_50"):
            t = track[key]
            lines.append(
                f"| MLflow, per-step gradient norms, log_every_n_steps={t['every']} | "
                f"{t['seconds_per_epoch']:.3f} | {t['cost']:+.1%} ({t['cost_paired']:+.1%}) | "
                f"{t['finish_seconds']:.2f} |"
            )
    if report.get("startup"):
        s = report["startup"]
        lines += ["", f"`{s['command']}`: {s['seconds']:.2f} s (median of {len(s['runs'])})."]
    j = report.get("jit_startup")
    if j:
        lines += [
            "",
            f"Compiled kernels (Numba {m.get('numba', '?')}), once per process before the first "
            f"step: {j['cached']['seconds']:.2f} s with Numba's disk cache, "
            f"{j['compiled']['seconds']:.2f} s compiling from scratch (import included; "
            "medians of fresh processes).",
        ]
    lines += ["", "| target (issue 7) | measured | limit | holds |", "|---|---:|---:|:---:|"]
    for row in report["targets"]:
        sign = ">=" if row.get("at_least") else "<="
        lines.append(
            f"| {row['target']} | {row['value']:.3f} | {sign} {row['limit']:.3f} | "
            f"{'yes' if row['holds'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def measure(
    tools: dict[str, dict[str, Any]],
    warm_command: dict[str, Any],
    command: dict[str, Any],
    rounds: int,
    pause: float,
    timeout: float,
) -> dict[str, Any]:
    """Start a worker per tool, one warm-up turn each, then ``rounds`` timed turns."""
    workers: dict[str, Worker] = {}
    try:
        for name, job in tools.items():
            workers[name] = Worker(job, timeout)
        warmup = take_turns(workers, 1, warm_command, pause)
        seconds = take_turns(workers, rounds, command, pause)
        closed = {name: worker.close() for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.kill()
    return {"warmup": warmup, "seconds": seconds, "closed": closed}


def record(
    report: dict[str, Any],
    spec: dict[str, Any],
    dtype: str,
    peers: list[str],
    out: dict[str, Any],
    say: Callable[..., None],
) -> None:
    """Put one problem's measurements into the report's results, gemm and memory."""
    problem = spec["name"]
    tools = report["results"].setdefault(problem, {}).setdefault(dtype, {})
    times = out["seconds"]
    if problem == "a":
        gemm = out["closed"]["gemm"]
        gemm.pop("memory", None)
        report["gemm"][dtype] = gemm
    for peer in peers:
        row = row_a(spec, times[peer], gemm) if problem == "a" else row_b(spec, times[peer])
        closed = out["closed"][peer]
        row["warmup_seconds"] = out["warmup"][peer][0]
        row["final_loss"] = closed["final_loss"]
        tools[peer] = row
        mem = closed["memory"]
        mem["beyond_data_bytes"] = mem["peak_rss_bytes"] - mem["data_bytes"]
        report["memory"].setdefault(problem, {}).setdefault(dtype, {})[peer] = mem
        unit = " s/epoch" if problem == "a" else f" s per {spec['epochs']} epochs"
        say(
            f"({problem}) {dtype} {peer}: {', '.join(f'{t:.3f}' for t in times[peer])}{unit}; "
            f"peak {mib(mem['peak_rss_bytes'])} MiB, data {mib(mem['data_bytes'])} MiB",
            flush=True,
        )
    if "mlpx" in peers:
        for peer in peers:
            if peer != "mlpx":
                mine, theirs = tools["mlpx"], tools[peer]
                theirs["mlpx_ratio"] = mine["seconds_per_epoch"] / theirs["seconds_per_epoch"]
                theirs["mlpx_ratio_paired"] = paired_ratio(times["mlpx"], times[peer])


def tracking_cost(
    base: dict[str, Any], epochs: int, pause: float, args: argparse.Namespace, say: Any
) -> dict[str, Any]:
    """mlpx on (a) float32 with MLflow (per-step gradient norms, every step and every 50)
    and without tracking, taking turns epoch by epoch.

    Two untracked workers run side by side: an epoch's baseline is their mean in the same
    round, and their own paired difference (``noise``) shows how far two identical
    processes drift apart on this machine, the floor under which a cost is not resolved.
    """
    uri = f"sqlite:///{Path(base['folder']) / 'mlflow.db'}"
    code = (
        "import sys\n"
        "if sys.argv[2]: sys.path.insert(0, sys.argv[2])\n"
        "from mlpx.tracking import prepare_store\n"
        "prepare_store(sys.argv[1], 'speed')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, uri, args.mlpx_path or ""],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:  # creating the store once keeps the workers from racing
        raise RuntimeError("creating the MLflow store failed: " + proc.stderr.strip()[-500:])
    job = {
        **base,
        "tool": "tracking",
        "problem": "a",
        "dtype": "float32",
        "epochs": epochs,
        "uri": uri,
        "pause": pause,
    }
    worker = Worker(job, args.timeout)
    try:
        worker.send(cmd="epoch")  # warm-up: every run's first epoch (fit's set-up)
        rounds = [worker.send(cmd="epoch")["seconds"] for _ in range(epochs)]
        closed = worker.close()["runs"]
    finally:
        worker.kill()
    times = {name: [r[name] for r in rounds] for name in rounds[0]}
    baseline = [(a + b) / 2 for a, b in zip(times["none"], times["none_2"])]
    none = statistics.median(baseline)
    result: dict[str, Any] = {
        "problem": "a",
        "dtype": "float32",
        "none": {
            "seconds_per_epoch": none,
            "epoch_seconds": baseline,
            "workers": [times["none"], times["none_2"]],
            "noise": paired_ratio(times["none_2"], times["none"]) - 1.0,
        },
    }
    for key, every in (("every_1", 1), ("every_50", 50)):
        value = statistics.median(times[key])
        result[key] = {
            "every": every,
            "seconds_per_epoch": value,
            "epoch_seconds": times[key],
            "cost": value / none - 1.0,
            "cost_paired": paired_ratio(times[key], baseline) - 1.0,
            "finish_seconds": closed[key].get("finish_seconds", 0.0),
        }
        say(
            f"tracking {key}: {value:.3f} s/epoch, none {none:.3f}, paired cost "
            f"{result[key]['cost_paired']:+.1%} (noise {result['none']['noise']:+.1%})",
            flush=True,
        )
    return result


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM as an exception, once: the workers are stopped and the data folder removed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--md", type=Path, default=None, help="write the Markdown table")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs of (a) (5)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs of (b) (5)")
    parser.add_argument("--problems", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    parser.add_argument("--no-tracking", action="store_true", help="skip the MLflow lines")
    parser.add_argument("--no-startup", action="store_true", help="skip `mlpx --help`")
    parser.add_argument(
        "--jit",
        default="auto",
        choices=["auto", "true", "false"],
        help="mlpx's backend.jit: compiled kernels (Numba) when installed (auto), always, never",
    )
    parser.add_argument("--mlpx-path", default=None, help="import mlpx from this folder")
    parser.add_argument(
        "--openblas-coretype",
        default=None,
        metavar="NAME",
        help="OPENBLAS_CORETYPE for every tool's process (it picks the GEMM kernels of "
        "NumPy's OpenBLAS: mlpx, scikit-learn, the GEMM ceiling; not PyTorch's MKL), e.g. "
        "SkylakeX on an AVX-512 CPU; default: the environment's setting",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="per job, seconds")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        serve(json.loads(args.worker))
        return 0

    signal.signal(signal.SIGTERM, _terminate)
    quick = args.quick
    epochs = args.epochs or (1 if quick else 5)
    runs = args.runs or (2 if quick else 5)
    if min(epochs, runs) < 1:
        parser.error("--epochs and --runs must be >= 1")
    peers = [p for p in PEERS if p in args.peers]
    skipped = {p: why for p in peers if (why := available(p)) is not None}
    peers = [p for p in peers if p not in skipped]
    shown = argv if argv is not None else sys.argv[1:]
    say = print if not quick else (lambda *a, **k: print(*a, **k, file=sys.stderr))
    started = time.perf_counter()
    report: dict[str, Any] = {
        "command": f"python benchmarks/speed.py {shlex.join(shown)}".strip(),
        "machine": machine(),
        "load_before": load_average(),
        "config": {
            "quick": quick,
            "timed_epochs_a": epochs,
            "timed_runs_b": runs,
            "problems": {p: problem_spec(p, quick) for p in args.problems},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "threads": threads(),
            "peers": peers,
            "openblas_coretype": args.openblas_coretype or os.environ.get("OPENBLAS_CORETYPE"),
            "openblas_l2_size": os.environ.get("OPENBLAS_L2_SIZE"),
            "jit": args.jit,
        },
        "skipped": skipped,
        "results": {},
        "gemm": {},
        "memory": {},
    }
    pause = 0.15 if quick else 0.3  # > the ~0.1 s OpenBLAS threads spin after a GEMM
    with tempfile.TemporaryDirectory(prefix="mlpx-speed-") as tmp:
        base = {
            "folder": tmp,
            "quick": quick,
            "mlpx_path": args.mlpx_path,
            "threads": threads(),
            "jit": args.jit,
        }
        if args.openblas_coretype:
            base["env"] = {"OPENBLAS_CORETYPE": args.openblas_coretype}
        t0 = time.perf_counter()
        prepare(base, args.timeout)
        say(f"data ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        for problem in args.problems:
            spec = problem_spec(problem, quick)
            for dtype in spec["dtypes"]:
                if not peers:
                    continue
                common = {**base, "problem": problem, "dtype": dtype, "epochs": epochs}
                tools = {tool: {**common, "tool": tool} for tool in peers}
                if problem == "a":
                    tools["gemm"] = {**common, "tool": "gemm", "gemm_steps": 3 if quick else 25}
                    command: dict[str, Any] = {"cmd": "epoch"}
                    warm_command: dict[str, Any] = command
                    rounds = epochs
                else:
                    command = {"cmd": "run", "epochs": spec["epochs"]}
                    warm_command = {"cmd": "run", "epochs": 2}
                    rounds = runs
                out = measure(tools, warm_command, command, rounds, pause, args.timeout)
                record(report, spec, dtype, peers, out, say)
        if not args.no_tracking and "mlpx" in peers and "a" in args.problems:
            if importlib.util.find_spec("mlflow") is None:
                report["skipped"]["tracking"] = "mlflow is not installed"
            else:
                # at least 8 rounds: a few percent is what this comparison has to resolve
                rounds = epochs if quick else max(epochs, 8)
                report["tracking"] = tracking_cost(base, rounds, pause, args, say)
    if not args.no_startup:
        report["startup"] = startup_time(args, 1 if quick else 5)
        say(f"mlpx --help: {report['startup']['seconds']:.2f} s", flush=True)
        if args.jit != "false" and importlib.util.find_spec("numba") is not None:
            report["jit_startup"] = jit_startup(args, 1 if quick else 3)
            say(f"JIT start-up: {report['jit_startup']}", flush=True)
    report["load_after"] = load_average()
    report["seconds"] = time.perf_counter() - started
    report["targets"] = target_rows(report)
    table = markdown(report)
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {args.out}")
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(table)
        say(f"wrote {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

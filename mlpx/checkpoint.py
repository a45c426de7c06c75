"""Checkpoints: everything needed to continue a run exactly, as a pickle-free ``.npz``.

A checkpoint holds the network (architecture and parameters), the optimizer state (step
counter and buffers), the state of the seeded ``numpy.random.Generator`` that orders the
mini-batches, the epoch/step counters, the early-stopping state, the metric history and,
when written in the middle of an epoch (an interruption), the rest of that epoch's batch
order and its running sums. Every entry is a plain array or a string: files are read with
``np.load(allow_pickle=False)``, so a checkpoint can never run code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.backend import to_numpy
from mlpx.nn.state import flatten_state, unflatten_state

FORMAT = "mlpx-checkpoint-1"
_NAME = re.compile(r"^step_(\d+)\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the configured run."""


@dataclass
class TrainState:
    """Counters and running state of ``train.fit`` between two steps.

    ``pending`` lists the batches (index arrays) of the current epoch not yet taken;
    ``sums`` holds that epoch's running loss/correct/window sums (both empty between
    epochs).
    """

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    best: float = float("nan")
    best_epoch: int = 0
    waited: int = 0
    best_params: list[np.ndarray] | None = None
    stopped: bool = False  # early stopping ended the run
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    pending: list[np.ndarray] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike,
    net: Any,
    optimizer: Any,
    rng: np.random.Generator,
    state: TrainState,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename) and return its path."""
    arrays: dict[str, np.ndarray] = {"format": np.asarray(FORMAT)}
    for key, value in net.state_dict().items():
        arrays[f"model/{key}"] = np.asarray(value)
    for key, value in flatten_state(optimizer.state_dict()).items():
        arrays[f"optimizer/{key}"] = value
    arrays["rng"] = np.asarray(json.dumps(rng.bit_generator.state))
    counters = {
        "epoch": state.epoch,
        "step": state.step,
        "best": state.best,
        "best_epoch": state.best_epoch,
        "waited": state.waited,
        "stopped": state.stopped,
        "sums": state.sums,
        "meta": meta or {},
    }
    arrays["counters"] = np.asarray(json.dumps(counters))
    if state.best_params is not None:
        for i, p in enumerate(state.best_params):
            arrays[f"best/{i}"] = to_numpy(p)
    for key, points in state.history.items():
        arrays[f"history/{key}"] = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if state.pending:
        arrays["pending/indices"] = np.concatenate(state.pending).astype(np.int64)
        arrays["pending/sizes"] = np.asarray([len(b) for b in state.pending], dtype=np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass
class Checkpoint:
    """A checkpoint read back: model and optimizer state, RNG state, train state."""

    path: Path
    model: dict[str, np.ndarray]
    optimizer: dict[str, Any]
    rng_state: dict[str, Any]
    state: TrainState
    meta: dict[str, Any]

    def restore(self, net: Any, optimizer: Any, rng: np.random.Generator) -> TrainState:
        """Load into ``net``, ``optimizer`` and ``rng``; raise CheckpointError on mismatch."""
        try:
            net.load_state_dict(self.model)
            optimizer.load_state_dict(self.optimizer)
        except ValueError as exc:
            raise CheckpointError(
                f"trainer.resume={self.path} does not fit this run: {exc}"
            ) from None
        rng.bit_generator.state = self.rng_state
        return self.state


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"trainer.resume: no checkpoint at {path}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"trainer.resume: {path} is not an mlpx checkpoint ({exc})") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise CheckpointError(f"trainer.resume: {path} is not an mlpx checkpoint ({FORMAT})")
    counters = json.loads(str(arrays["counters"]))
    state = TrainState(
        epoch=int(counters["epoch"]),
        step=int(counters["step"]),
        best=float(counters["best"]),
        best_epoch=int(counters["best_epoch"]),
        waited=int(counters["waited"]),
        stopped=bool(counters.get("stopped", False)),
        sums={k: float(v) for k, v in counters["sums"].items()},
    )
    best = sorted((k for k in arrays if k.startswith("best/")), key=lambda k: int(k[5:]))
    state.best_params = [arrays[k] for k in best] or None
    for key in arrays:
        if key.startswith("history/"):
            state.history[key[8:]] = [(int(s), float(v)) for s, v in arrays[key]]
    if "pending/indices" in arrays:
        cuts = np.cumsum(arrays["pending/sizes"])[:-1]
        state.pending = list(np.split(arrays["pending/indices"], cuts))
    return Checkpoint(
        path=path,
        model={k[6:]: v for k, v in arrays.items() if k.startswith("model/")},
        optimizer=unflatten_state(
            {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        ),
        rng_state=json.loads(str(arrays["rng"])),
        state=state,
        meta=counters.get("meta", {}),
    )


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``folder`` (``step_<n>.npz``), or None."""
    found = [
        (int(m.group(1)), p) for p in Path(folder).glob("step_*.npz") if (m := _NAME.match(p.name))
    ]
    return max(found)[1] if found else None


class Checkpointer:
    """Writes ``step_<n>.npz`` into ``folder``, keeps the last ``keep``, logs each to MLflow.

    ``every`` is in epochs (0: only at the end and on interruption).
    """

    def __init__(self, folder: str | os.PathLike, every: int, keep: int, tracker: Any = None):
        self.folder = Path(folder)
        self.every = every
        self.keep = keep
        self.tracker = tracker
        self.last: Path | None = None

    def due(self, epoch: int) -> bool:
        """Whether to checkpoint after ``epoch``."""
        return self.every > 0 and epoch % self.every == 0

    def save(self, net: Any, optimizer: Any, rng: np.random.Generator, state: TrainState) -> Path:
        """Write a checkpoint of the current state and prune the old ones."""
        meta = {"run_id": getattr(self.tracker, "run_id", None)}
        path = self.folder / f"step_{state.step}.npz"
        path = save_checkpoint(path, net, optimizer, rng, state, meta)
        self.last = path
        kept = sorted(
            (int(m.group(1)), p)
            for p in self.folder.glob("step_*.npz")
            if (m := _NAME.match(p.name))
        )
        for _, old in kept[: -self.keep]:
            old.unlink(missing_ok=True)
        # MLflow keeps one copy, overwritten each time: checkpoints/last.npz
        last = self.folder / "last.npz"
        shutil.copyfile(path, last)
        if self.tracker is not None:
            self.tracker.log_artifact(str(last), "checkpoints")
        return path

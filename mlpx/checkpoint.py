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
import time
from collections.abc import Callable
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

    def restore(
        self, net: Any, optimizer: Any, rng: np.random.Generator, n_train: int | None = None
    ) -> TrainState:
        """Load into ``net``, ``optimizer`` and ``rng``; raise CheckpointError on mismatch.

        Each field is checked against this run before anything is loaded: the model's keys,
        shapes and dtype (``backend.dtype``), the best weights' shapes and, with ``n_train``
        (rows of the training set), the indices of the rest of an interrupted epoch.
        """
        expected = net.state_dict()
        fields = check_fields(self.path, expected, self.model, self.state, n_train)
        try:
            net.load_state_dict(self.model)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CheckpointError(f"{fields}: field model does not fit this run: {exc}") from None
        try:
            optimizer.load_state_dict(self.optimizer)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CheckpointError(
                f"{fields}: field optimizer does not fit this run: {exc}"
            ) from None
        rng.bit_generator.state = self.rng_state
        return self.state


def check_fields(
    path: Path,
    expected: dict[str, Any],
    model: dict[str, np.ndarray],
    state: TrainState,
    n_train: int | None,
) -> str:
    """Check a loaded checkpoint's model and train state against a network's ``state_dict``
    (``expected``); return how messages name the checkpoint. Raises CheckpointError."""
    where = f"trainer.resume={path}"
    for key, want in expected.items():
        if key not in model:
            raise CheckpointError(f"{where}: field model/{key} is missing")
        got, want = np.asarray(model[key]), np.asarray(want)
        if key == "dtype" and str(got) != str(want):
            raise CheckpointError(
                f"{where}: field model/dtype is {got} but this run's backend.dtype is {want}: "
                f"resume with backend.dtype={got} (what the checkpoint was trained in)"
            )
        if want.dtype.kind != "f" and (got.shape != want.shape or (got != want).any()):
            raise CheckpointError(
                f"{where}: field model/{key} is {got.tolist()} but this run's network has "
                f"{want.tolist()}: the checkpoint does not fit this run (resume with its model "
                "settings)"
            )
        if want.dtype.kind == "f" and (got.dtype != want.dtype or got.shape != want.shape):
            raise CheckpointError(
                f"{where}: field model/{key} must be a {want.dtype} array of shape "
                f"{want.shape}, got {got.dtype} {got.shape}"
            )
    extra = sorted(set(model) - set(expected))
    if extra:
        raise CheckpointError(f"{where}: field model/{extra[0]} is not part of this network")
    if state.best_params is not None:
        n_layers = sum(1 for k in expected if k.startswith("W_"))
        shapes = [
            np.asarray(expected[f"{c}_{i}"]).shape for i in range(1, n_layers + 1) for c in "Wb"
        ]
        got = [np.asarray(p).shape for p in state.best_params]
        if got != shapes:
            raise CheckpointError(f"{where}: field best must hold arrays of shapes {shapes}")
    if n_train is not None and state.pending:
        flat = np.concatenate(state.pending)
        if flat.size and (flat.min() < 0 or flat.max() >= n_train):
            raise CheckpointError(
                f"{where}: field pending/indices holds indices outside the training set's "
                f"{n_train} rows (min {flat.min()}, max {flat.max()})"
            )
    return where


#: Checkpoints larger than this are refused before reading (an array header that claims
#: more than the file holds is refused too).
MAX_ARRAY_BYTES = 16 * 2**30
_COUNTER_INTS = ("epoch", "step", "best_epoch", "waited")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, each header checked before it is read."""
    import zipfile
    import zlib

    if not path.exists():
        raise CheckpointError(f"trainer.resume: no checkpoint at {path}")
    if path.is_dir():
        raise CheckpointError(f"trainer.resume={path}: is a folder with no step_*.npz in it")
    where = f"trainer.resume={path}"
    if path.stat().st_size == 0:
        raise CheckpointError(f"{where}: the file is empty (not an mlpx checkpoint)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    arrays[name] = _read_member(fh, info.file_size, f"{where}: field {name}")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{where}: the file is not an mlpx checkpoint (truncated or damaged: "
            f"{' '.join(str(exc).split())[:120]})"
        ) from None
    return arrays


def _read_member(fh: Any, size: int, what: str) -> np.ndarray:
    """One ``.npy`` member: its header checked (no objects, a size that the member holds)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)  # max_header_size: numpy's safe default
    except (ValueError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"{what}: bad array header ({str(exc).splitlines()[0][:100]})"
        ) from None
    if dtype.hasobject:
        raise CheckpointError(f"{what}: holds Python objects (refused: checkpoints are data)")
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES or nbytes > size:
        raise CheckpointError(
            f"{what}: the header claims shape {shape} of {dtype} ({nbytes} bytes) but the "
            f"file holds {size} bytes"
        )
    buffer = bytearray(nbytes)
    got = fh.readinto(buffer) if nbytes else 0
    if got != nbytes:
        raise CheckpointError(f"{what}: truncated ({got} of {nbytes} bytes)")
    array = np.frombuffer(buffer, dtype=dtype) if nbytes else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran else "C")


def _json_field(arrays: dict[str, np.ndarray], key: str, where: str) -> dict[str, Any]:
    if key not in arrays:
        raise CheckpointError(f"{where}: field {key} is missing")
    try:
        value = json.loads(str(arrays[key]))
    except ValueError:
        raise CheckpointError(f"{where}: field {key} is not valid JSON") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: field {key} must be a JSON object")
    return value


def _counters(arrays: dict[str, np.ndarray], where: str) -> TrainState:
    counters = _json_field(arrays, "counters", where)
    values: dict[str, Any] = {}
    for key in _COUNTER_INTS:
        v = counters.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CheckpointError(
                f"{where}: field counters.{key} must be an integer >= 0, got {v!r}"
            )
        values[key] = v
    if values["best_epoch"] > values["epoch"] or values["epoch"] > values["step"]:
        raise CheckpointError(
            f"{where}: fields counters.epoch/step/best_epoch disagree: epoch {values['epoch']}, "
            f"step {values['step']}, best_epoch {values['best_epoch']}"
        )
    best = counters.get("best")
    if isinstance(best, bool) or not isinstance(best, int | float):
        raise CheckpointError(f"{where}: field counters.best must be a number, got {best!r}")
    stopped = counters.get("stopped", False)
    if not isinstance(stopped, bool):
        raise CheckpointError(f"{where}: field counters.stopped must be true or false")
    sums = counters.get("sums", {})
    ok = isinstance(sums, dict) and all(
        k in ("loss", "correct", "window_loss", "window_steps")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        for k, v in sums.items()
    )
    if not ok:
        raise CheckpointError(f"{where}: field counters.sums must map the epoch's sums to numbers")
    if not isinstance(counters.get("meta", {}), dict):
        raise CheckpointError(f"{where}: field counters.meta must be a JSON object")
    return TrainState(
        **values, best=float(best), stopped=stopped, sums={k: float(v) for k, v in sums.items()}
    )


def _int_array(arrays: dict[str, np.ndarray], key: str, where: str) -> np.ndarray:
    a = arrays[key]
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise CheckpointError(f"{where}: field {key} must be a 1-d integer array")
    return a.astype(np.int64)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles).

    Every field is checked as it is read (array headers before any allocation, then the
    format, counters, RNG state, history, pending batches, model and optimizer entries);
    the first bad one raises :class:`CheckpointError` naming the file and the field.
    """
    path = Path(path)
    where = f"trainer.resume={path}"
    arrays = _read_arrays(path)
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        raise CheckpointError(f"{where}: field format is not {FORMAT!r} (not an mlpx checkpoint)")
    state = _counters(arrays, where)
    meta = _json_field(arrays, "counters", where).get("meta", {})
    rng_state = _json_field(arrays, "rng", where)
    try:  # a state the generator accepts (PCG64 ... ) and nothing else
        name = rng_state.get("bit_generator")
        if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise ValueError(f"unknown bit generator {name!r}")
        getattr(np.random, name)().state = rng_state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"{where}: field rng is not a generator state ({exc})") from None
    best = sorted((k for k in arrays if k.startswith("best/")), key=lambda k: k[5:].zfill(9))
    if [k[5:] for k in best] != [str(i) for i in range(len(best))]:
        raise CheckpointError(f"{where}: fields best/<i> must be numbered 0, 1, ...")
    for k in best:
        if arrays[k].dtype.kind != "f":
            raise CheckpointError(f"{where}: field {k} must be a float array")
    state.best_params = [arrays[k] for k in best] or None
    for key in arrays:
        if key.startswith("history/"):
            points = arrays[key]
            if points.ndim != 2 or points.shape[1] != 2 or points.dtype.kind != "f":
                raise CheckpointError(f"{where}: field {key} must be an (n, 2) float array")
            steps = points[:, 0]
            if not np.all(np.isfinite(steps)) or np.any(steps < 0) or np.any(steps % 1):
                raise CheckpointError(f"{where}: field {key} has steps that are not integers >= 0")
            state.history[key[8:]] = [(int(s), float(v)) for s, v in points]
    if ("pending/indices" in arrays) != ("pending/sizes" in arrays):
        raise CheckpointError(f"{where}: fields pending/indices and pending/sizes come together")
    if "pending/indices" in arrays:
        indices = _int_array(arrays, "pending/indices", where)
        sizes = _int_array(arrays, "pending/sizes", where)
        if np.any(sizes <= 0) or int(sizes.sum()) != indices.size:
            raise CheckpointError(
                f"{where}: field pending/sizes must be positive and add up to the "
                f"{indices.size} pending/indices"
            )
        state.pending = list(np.split(indices, np.cumsum(sizes)[:-1]))
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    for k, v in model.items():
        if v.dtype.kind not in "fiuUb":
            raise CheckpointError(f"{where}: field model/{k} has dtype {v.dtype}")
    try:
        optimizer = unflatten_state(
            {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        )
    except ValueError as exc:
        raise CheckpointError(f"{where}: field optimizer: {exc}") from None
    return Checkpoint(path, model, optimizer, rng_state, state, meta)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``folder`` (``step_<n>.npz``), or None."""
    found = [
        (int(m.group(1)), p) for p in Path(folder).glob("step_*.npz") if (m := _NAME.match(p.name))
    ]
    return max(found)[1] if found else None


class Checkpointer:
    """Writes ``step_<n>.npz`` into ``folder``, keeps the last ``keep``, logs each to MLflow.

    Each checkpoint comes after a ``tracker.flush()`` (metrics and checkpoint are one unit);
    ``meta`` (JSON-able) is saved in each one: the run's config, to check a resume against.

    ``every`` is in epochs (0: only at the end and on interruption). ``min_seconds`` > 0
    spaces the periodic checkpoints in time as well: one is due at the first epoch boundary
    where at least ``every`` epochs AND ``min_seconds`` of wall time (``clock``, by default
    ``time.monotonic``) have passed since the last checkpoint or since :meth:`start`. With
    ``min_seconds`` 0 a checkpoint is due after every epoch that is a multiple of ``every``,
    as before. The checkpoints at the end and on interruption are written by the trainer
    whatever :meth:`due` says.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        every: int,
        keep: int,
        tracker: Any = None,
        meta: dict[str, Any] | None = None,
        min_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.folder = Path(folder)
        self.every = every
        self.keep = keep
        self.tracker = tracker
        self.meta = dict(meta or {})  # JSON-able, saved in each checkpoint (e.g. the config)
        self.last: Path | None = None
        self.min_seconds = float(min_seconds)
        self.clock = clock
        self._since = (0, clock())  # (epoch, clock time) of the last checkpoint or the start

    def start(self, epoch: int = 0) -> None:
        """Training starts (or resumes) after ``epoch``: the time and epochs counted towards
        the next periodic checkpoint start now."""
        self._since = (epoch, self.clock())

    def due(self, epoch: int) -> bool:
        """Whether a periodic checkpoint is due after ``epoch``."""
        if self.every <= 0:
            return False
        if self.min_seconds <= 0:
            return epoch % self.every == 0
        last_epoch, last_time = self._since
        return epoch - last_epoch >= self.every and self.clock() - last_time >= self.min_seconds

    def save(self, net: Any, optimizer: Any, rng: np.random.Generator, state: TrainState) -> Path:
        """Flush the tracker, then write a checkpoint of the current state and prune the old
        ones: every metric value up to the checkpoint's step is stored before the checkpoint
        exists, so a run killed at any moment and resumed from it has no gap."""
        if self.tracker is not None:
            self.tracker.flush()
        meta = {**self.meta, "run_id": getattr(self.tracker, "run_id", None)}
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
        self._since = (state.epoch, self.clock())
        return path

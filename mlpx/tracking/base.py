"""The tracker protocol, the two trackers without a backend, and the value helpers they share.

The training loop talks to a :class:`Tracker` and never to MLflow directly::

    tracker = MemoryTracker()              # or NullTracker(), or mlpx.tracking.MlflowTracker(...)
    tracker.log_params(flatten(cfg))
    tracker.log_metrics({"train/loss": 0.3, "train/accuracy": 0.91}, step=epoch)
    tracker.finish()                       # or finish("FAILED", error=traceback_text)

The helpers here (:func:`sanitize_key`, :func:`flatten`, :func:`param_value`,
:func:`metric_value`, :func:`check_status` ...) turn values into what MLflow stores, so that a
:class:`MemoryTracker` keeps exactly what :class:`mlpx.tracking.MlflowTracker` would send.
Imports nothing heavy (matplotlib only to close a pyplot figure it was handed).
"""

from __future__ import annotations

import os
import re
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "ERROR_ARTIFACT",
    "ERROR_TAG",
    "MAX_ENTITY_KEY_LENGTH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VAL_LENGTH",
    "MAX_TAG_VAL_LENGTH",
    "RUN_STATUSES",
    "MemoryTracker",
    "NullTracker",
    "Tracker",
    "TrackingError",
    "check_status",
    "chunks",
    "close_figure",
    "flatten",
    "metric_value",
    "param_value",
    "sanitize_key",
    "status_for_exception",
]

# MLflow 3.x limits (mlflow/utils/validation.py); copied so that importing this module stays cheap.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_ENTITY_KEY_LENGTH = 250

#: Terminal statuses accepted by :meth:`Tracker.finish`.
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
#: The tag and the artifact file that hold the error passed to ``finish``.
ERROR_TAG = "error"
ERROR_ARTIFACT = "error.txt"

_T = TypeVar("_T")


class TrackingError(Exception):
    """The tracking store cannot be used; the message says what to do next."""


# --------------------------------------------------------------------------------------------
# The protocol and the two trackers without a backend
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Tracker(Protocol):
    """What the training loop needs from experiment tracking.

    ``log_metrics`` takes a dict of scalars for one ``step``; ``log_figure`` saves a matplotlib
    figure as the artifact file ``name`` (e.g. ``"figures/learning_curves.png"``) and closes it;
    ``finish`` ends the run with status ``FINISHED | FAILED | KILLED``, records ``error`` (if
    any) as the tag ``error`` and the artifact ``error.txt``, and may be called more than once.
    """

    run_id: str | None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def log_figure(self, figure: Any, name: str) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def flush(self) -> None: ...
    def finish(self, status: str = "FINISHED", error: str | None = None) -> None: ...


class NullTracker:
    """A tracker that records nothing (``run_id`` is None); figures passed to it are closed."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        pass

    def log_figure(self, figure: Any, name: str) -> None:
        close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        check_status(status)

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __repr__(self) -> str:
        return "NullTracker()"


class MemoryTracker:
    """Keeps everything in memory, for tests and notebooks.

    Attributes:
        params: flattened params, values converted to str as MLflow would store them.
        tags: tags as str.
        metrics: ``{key: [(step, value), ...]}`` in logging order, the format
            :func:`mlpx.analysis.plots.learning_curves` reads.
        artifacts: artifact names (``artifact_path/filename``), in logging order.
        figures: figure names, in logging order (figures are closed after "logging").
        texts: ``{name: text}`` from ``log_text`` (and ``error.txt``).
        status: ``"RUNNING"`` until :meth:`finish`, then its status.
        error: the error passed to :meth:`finish`, if any.
    """

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id: str | None = run_id if run_id is not None else f"memory-{uuid.uuid4().hex}"
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.artifacts: list[str] = []
        self.figures: list[str] = []
        self.texts: dict[str, str] = {}
        self.status: str = "RUNNING"
        self.error: str | None = None
        self.flushes = 0

    def log_params(self, params: dict[str, Any]) -> None:
        for key, value in flatten(params).items():
            self.params[sanitize_key(key)] = param_value(value)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.tags[sanitize_key(str(key))] = str(value)[:MAX_TAG_VAL_LENGTH]

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        step = int(step)
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, metric_value(key, value)))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts.append(f"{artifact_path}/{name}" if artifact_path else name)

    def log_figure(self, figure: Any, name: str) -> None:
        self.figures.append(name)
        close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text

    def flush(self) -> None:
        self.flushes += 1

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        check_status(status)
        if self.status != "RUNNING":
            return
        if error:
            self.error = error
            self.tags[ERROR_TAG] = error[:MAX_TAG_VAL_LENGTH]
            self.texts[ERROR_ARTIFACT] = error
        self.status = status

    def __enter__(self) -> MemoryTracker:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(*status_for_exception(exc_type, exc, tb))

    def __repr__(self) -> str:
        n_values = sum(len(v) for v in self.metrics.values())
        return (
            f"MemoryTracker(run_id={self.run_id!r}, status={self.status!r}, "
            f"params={len(self.params)}, metrics={len(self.metrics)} keys/{n_values} values, "
            f"artifacts={len(self.artifacts)}, figures={len(self.figures)})"
        )


# --------------------------------------------------------------------------------------------
# Small helpers: keys, values, flattening
# --------------------------------------------------------------------------------------------

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def sanitize_key(key: str) -> str:
    """Make ``key`` a valid MLflow param/metric/tag name.

    MLflow accepts alphanumerics, ``_ - . / :`` and spaces, at most 250 characters, and no
    names that change under path normalisation; anything else becomes ``_``.
    ``"model.widths[0]"`` -> ``"model.widths_0_"``.
    """
    key = _BAD_KEY_CHARS.sub("_", str(key))
    key = re.sub(r"/{2,}", "/", key).strip("/")
    # "a/./b" and "a/../b" resolve to other names: MLflow refuses them.
    key = "/".join("_" if part in (".", "..") else part for part in key.split("/"))
    return key[:MAX_ENTITY_KEY_LENGTH] or "_"


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _scalar(value: Any) -> Any:
    """numpy/cupy/torch 0-d values -> Python scalars (printed ``0.1``, not ``np.float64(0.1)``)."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _format_sequence(values: Sequence[Any]) -> str:
    parts = []
    for v in values:
        v = _scalar(v)
        parts.append(_format_sequence(v) if _is_sequence(v) else repr(v))
    return "[" + ", ".join(parts) + "]"


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into dotted keys, ready for ``log_params``.

    Nested mappings become ``a.b.c``; lists of scalars become one string value
    (``{"model": {"widths": [128, 64]}}`` -> ``{"model.widths": "[128, 64]"}``); lists that
    contain mappings are indexed (``{"layers": [{"p": 3}]}`` -> ``{"layers.0.p": 3}``).
    Scalars keep their type; empty mappings become ``"{}"``. Works on anything that behaves
    like a Mapping/Sequence (an OmegaConf DictConfig too, without importing omegaconf).
    """
    out: dict[str, Any] = {}
    _flatten_into(out, cfg, prefix)
    return out


def _flatten_into(out: dict[str, Any], value: Any, key: str) -> None:
    if isinstance(value, Mapping):
        if not value:
            if key:
                out[key] = "{}"
            return
        for k, v in value.items():
            _flatten_into(out, v, f"{key}.{k}" if key else str(k))
    elif _is_sequence(value) and any(isinstance(v, Mapping) for v in value):
        for i, v in enumerate(value):
            _flatten_into(out, v, f"{key}.{i}" if key else str(i))
    elif _is_sequence(value):
        out[key] = _format_sequence(value)
    else:
        out[key] = _scalar(value)


def param_value(value: Any) -> str:
    """A param value as MLflow stores it: a string, sequences as ``[1, 2]``, at most 6000
    characters."""
    value = _scalar(value)
    text = _format_sequence(value) if _is_sequence(value) else str(value)
    return text[:MAX_PARAM_VAL_LENGTH]


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float; a TypeError naming ``key`` when it is not a real number."""
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metric {key!r} must be a real number (float, int, 0-d array), "
            f"got {type(value).__name__}: {value!r:.80}"
        ) from e


def check_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one of :data:`RUN_STATUSES`."""
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")


def status_for_exception(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
) -> tuple[str, str | None]:
    """The ``(status, error)`` a run gets when its ``with`` block ends with this exception:
    FINISHED without one, KILLED for Ctrl-C, else FAILED with the formatted traceback."""
    if exc_type is None:
        return "FINISHED", None
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    return ("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"), text


def close_figure(figure: Any) -> None:
    """Close a pyplot-managed figure (a bare ``Figure()`` needs nothing: the GC takes it)."""
    manager = getattr(getattr(figure, "canvas", None), "manager", None)
    if manager is not None and "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close(figure)


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for i in range(0, len(items), size):
        yield items[i : i + size]

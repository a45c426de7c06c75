"""Experiment tracking behind a small protocol: MLflow for real runs, memory or nothing for tests.

The training loop talks to a :class:`Tracker` and never to MLflow directly::

    tracker = MlflowTracker(None, "mlp-digits", "adam-lr0.01-w128x3-relu")
    tracker.log_params(flatten(cfg))
    tracker.log_metrics({"train/loss": 0.3, "train/accuracy": 0.91}, step=epoch)
    tracker.finish()          # or finish("FAILED", error=traceback_text)

:class:`MlflowTracker` uses :class:`mlflow.tracking.MlflowClient` (no fluent global state, so
several trackers can live in one process), buffers metrics and sends them with ``log_batch``
(one SQL transaction / HTTP request per 1000 values instead of one per value: a single
``log_metric`` costs ~8 ms on SQLite and ~64 ms over HTTP), and retries transient store errors
("database is locked") with backoff. The sends happen on one background daemon thread per run
(a SQLite ``log_batch`` of 1000 values takes 50-100 ms), so ``log_metrics`` only appends to
the buffer; ``flush()`` and ``finish()`` wait for it and send what is left themselves.

Where runs go: an explicit ``tracking_uri`` wins, then ``MLFLOW_TRACKING_URI``, then MLflow's
own default, which in MLflow 3.x is ``sqlite:///<cwd>/mlflow.db`` (``mlflow ui`` started in the
same directory shows the runs). Relative SQLite paths are made absolute at resolution time so
sweep jobs that change directory still share one database. On SQLite stores, experiments
created here keep their artifacts next to the database, in ``<db folder>/mlruns/<experiment>``.

Sweeps: :func:`prepare_store` creates the database and the experiment once, before parallel
jobs start (two processes creating a fresh SQLite store at once corrupt it: "table experiments
already exists", "duplicate column name"; as a second line of defence the first use of a
SQLite store also holds an ``flock`` on its folder); :func:`create_parent_run` opens one
parent run and every job's tracker passes ``parent_run_id`` so it shows nested under it;
:func:`end_run` closes the parent.

``import mlpx.tracking`` is cheap: mlflow (~1.5-3 s), requests and matplotlib are imported
inside the functions that need them. Nothing here imports hydra or omegaconf.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import re
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VAL_LENGTH",
    "MAX_TAG_VAL_LENGTH",
    "RUN_STATUSES",
    "MemoryTracker",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "TrackingError",
    "check_tracking_uri",
    "create_parent_run",
    "end_run",
    "flatten",
    "prepare_store",
    "resolve_tracking_uri",
    "sanitize_key",
]

_logger = logging.getLogger(__name__)

# MLflow 3.x limits (mlflow/utils/validation.py); copied so that importing this module stays cheap.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_ENTITY_KEY_LENGTH = 250

#: Terminal statuses accepted by :meth:`Tracker.finish`.
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")

_PARENT_RUN_TAG = "mlflow.parentRunId"
_ERROR_TAG = "error"
_ERROR_ARTIFACT = "error.txt"
_SERVER_HINT = "mlflow server --host 127.0.0.1 --port 5000"
_SET_URI_HINT = "set logger.tracking_uri / MLFLOW_TRACKING_URI to a reachable store"

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
        _close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        _check_status(status)

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
            self.params[sanitize_key(key)] = _param_value(value)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.tags[sanitize_key(str(key))] = str(value)[:MAX_TAG_VAL_LENGTH]

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        step = int(step)
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, _metric_value(key, value)))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        name = Path(path).name
        self.artifacts.append(f"{artifact_path}/{name}" if artifact_path else name)

    def log_figure(self, figure: Any, name: str) -> None:
        self.figures.append(name)
        _close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text

    def flush(self) -> None:
        self.flushes += 1

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        _check_status(status)
        if self.status != "RUNNING":
            return
        if error:
            self.error = error
            self.tags[_ERROR_TAG] = error[:MAX_TAG_VAL_LENGTH]
            self.texts[_ERROR_ARTIFACT] = error
        self.status = status

    def __enter__(self) -> MemoryTracker:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(*_status_for_exception(exc_type, exc, tb))

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


def _param_value(value: Any) -> str:
    value = _scalar(value)
    text = _format_sequence(value) if _is_sequence(value) else str(value)
    return text[:MAX_PARAM_VAL_LENGTH]


def _metric_value(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metric {key!r} must be a real number (float, int, 0-d array), "
            f"got {type(value).__name__}: {value!r:.80}"
        ) from e


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")


def _status_for_exception(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
) -> tuple[str, str | None]:
    if exc_type is None:
        return "FINISHED", None
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    return ("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"), text


def _close_figure(figure: Any) -> None:
    """Close a pyplot-managed figure (a bare ``Figure()`` needs nothing: the GC takes it)."""
    manager = getattr(getattr(figure, "canvas", None), "manager", None)
    if manager is not None and "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        plt.close(figure)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --------------------------------------------------------------------------------------------
# Tracking URIs: resolution and checks
# --------------------------------------------------------------------------------------------


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][\w+.-]*:", uri) else ""


def _sqlite_path(uri: str) -> str | None:
    """The file path of a ``sqlite:///path`` URI (None for in-memory databases)."""
    rest = uri[len("sqlite://") :]
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", "/:memory:"):
        return None
    return unquote(rest[1:] if rest.startswith("/") else rest)


def resolve_tracking_uri(uri: str | os.PathLike | None = None) -> str:
    """The tracking URI a run will use.

    An explicit ``uri`` wins; else ``MLFLOW_TRACKING_URI``; else MLflow's own default
    (``mlflow.get_tracking_uri()``: ``sqlite:///<cwd>/mlflow.db`` in MLflow 3.x, or
    ``file://<cwd>/mlruns`` when that folder already holds old file-store experiments).
    Relative SQLite paths are made absolute against the current directory.
    """
    if uri is None or not str(os.fspath(uri)).strip():
        import mlflow

        uri = mlflow.get_tracking_uri()
    uri = str(os.fspath(uri)).strip()
    if _scheme(uri) == "sqlite":
        path = _sqlite_path(uri)
        if path is not None and not os.path.isabs(path):
            query = uri.split("?", 1)[1] if "?" in uri else ""
            uri = "sqlite:///" + os.path.abspath(path) + (f"?{query}" if query else "")
    return uri


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1).strip().rstrip(".").lower()
    name = type(exc).__name__
    if "Timeout" in name:
        return "timed out"
    return f"{name}: {text[:200]}" if text else name


def _server_hint(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0") and parts.port:
        return f"mlflow server --host {parts.hostname} --port {parts.port}"
    return _SERVER_HINT


def _check_http(uri: str, timeout: float) -> None:
    import requests

    base = uri.rstrip("/")
    try:
        response = requests.get(f"{base}/health", timeout=(min(timeout, 3.05), timeout))
        if response.status_code == 404:  # not every server exposes /health: try the API
            response = requests.get(
                f"{base}/api/2.0/mlflow/experiments/search",
                params={"max_results": 1},
                timeout=(min(timeout, 3.05), timeout),
            )
    except requests.RequestException as e:
        raise TrackingError(
            f"tracking server {uri} cannot be reached ({_short_reason(e)}): start it with "
            f"`{_server_hint(uri)}`, or {_SET_URI_HINT}"
        ) from None
    if response.status_code in (401, 403):
        raise TrackingError(
            f"tracking server {uri} refused the request (HTTP {response.status_code}): set "
            "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, "
            f"or {_SET_URI_HINT}"
        )
    if response.status_code >= 400:
        raise TrackingError(
            f"tracking server {uri} answered HTTP {response.status_code} "
            f"({response.text[:200].strip()!r}): is it an MLflow server? Start one with "
            f"`{_server_hint(uri)}`, or {_SET_URI_HINT}"
        )


def _check_writable_dir(folder: Path, what: str, uri: str) -> None:
    if not folder.exists():
        raise TrackingError(
            f"{what} {uri}: folder {folder} does not exist: create it (mkdir -p {folder}) "
            "or set logger.tracking_uri / MLFLOW_TRACKING_URI to a store in an existing folder"
        )
    if not folder.is_dir():
        raise TrackingError(f"{what} {uri}: {folder} is not a folder: point the URI elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TrackingError(
            f"{what} {uri}: folder {folder} is not writable: fix its permissions or set "
            "logger.tracking_uri / MLFLOW_TRACKING_URI to a store in a writable folder"
        )


def check_tracking_uri(uri: str | os.PathLike | None = None, *, timeout: float = 5.0) -> str:
    """Check, before training starts, that runs can be recorded at ``uri``; return it resolved.

    - ``http(s)://``: one GET of ``<uri>/health`` with a short timeout (MLflow's own client
      retries for minutes against a dead server; this fails in about ``timeout`` seconds).
    - ``sqlite:///path``: the folder exists and is writable (and the file, if present).
    - ``file:`` or a plain path (the legacy file store): MLflow 3 refuses it unless
      ``MLFLOW_ALLOW_FILE_STORE=true``; the folder above it must be writable.
    - other schemes (``postgresql://``, ``databricks`` ...) are returned unchecked.

    Raises:
        TrackingError: with a message naming the URI and what to do next.
    """
    uri = resolve_tracking_uri(uri)
    scheme = _scheme(uri)
    if scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme == "sqlite":
        path = _sqlite_path(uri)
        if path is not None:
            db = Path(path)
            _check_writable_dir(db.parent, "SQLite store", uri)
            if db.is_dir():
                raise TrackingError(
                    f"SQLite store {uri}: {db} is a folder, not a database file: "
                    "name a file, e.g. sqlite:///mlflow.db"
                )
            if db.exists() and not os.access(db, os.R_OK | os.W_OK):
                raise TrackingError(
                    f"SQLite store {uri}: {db} is not a writable file: fix its permissions "
                    "or set logger.tracking_uri / MLFLOW_TRACKING_URI elsewhere"
                )
    elif scheme in ("", "file"):
        allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1")
        if not allowed:
            raise TrackingError(
                f"{uri} is an MLflow file store, which MLflow 3 refuses unless "
                "MLFLOW_ALLOW_FILE_STORE=true: use a SQLite store instead "
                "(logger.tracking_uri=sqlite:///mlflow.db) or export MLFLOW_ALLOW_FILE_STORE=true"
            )
        path = Path(unquote(urlsplit(uri).path) if scheme == "file" else uri)
        folder = path if path.exists() else path.parent
        _check_writable_dir(folder, "file store", uri)
    return uri


# --------------------------------------------------------------------------------------------
# Retries and store-level helpers (prepare_store, parent runs)
# --------------------------------------------------------------------------------------------

_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"}
_TRANSIENT_TEXT = (
    "database is locked",
    "database table is locked",
    "connection refused",
    "connection reset",
    "connection aborted",
    "temporarily unavailable",
    "timed out",
)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if type(exc).__module__.startswith("requests") and type(exc).__name__ in (
        "ConnectionError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
    ):
        return True
    if getattr(exc, "error_code", None) in _TRANSIENT_CODES:
        return True
    text = str(exc).lower()
    return any(t in text for t in _TRANSIENT_TEXT)


def _with_retry(
    fn: Callable[..., _T],
    *args: Any,
    retries: int = 5,
    base_delay: float = 0.1,
    what: str = "tracking call",
    **kwargs: Any,
) -> _T:
    """Call ``fn``; on transient errors retry up to ``retries`` times with jittered backoff."""
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if attempt >= retries or not _is_transient(e):
                raise
            delay = base_delay * (2**attempt) * (1.0 + random.random())
            _logger.warning(
                "%s failed (%s); retrying in %.2f s (%d/%d)",
                what,
                str(e).splitlines()[0][:200] if str(e) else type(e).__name__,
                delay,
                attempt + 1,
                retries,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _retries_for(uri: str) -> int:
    # MLflow's REST client already retries connection errors, 429 and 5xx with backoff
    # (MLFLOW_HTTP_REQUEST_MAX_RETRIES); retrying on top of that would multiply minutes.
    return 0 if _scheme(uri) in ("http", "https") else 5


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    with _sqlite_creation_lock(uri):  # the client creates (and migrates) a SQLite store
        return MlflowClient(tracking_uri=uri)


def _default_artifact_location(uri: str, experiment_name: str) -> str | None:
    """On SQLite stores, artifacts live beside the database: ``<db folder>/mlruns/<name>``."""
    if _scheme(uri) != "sqlite":
        return None
    path = _sqlite_path(uri)
    if path is None:
        return None
    slug = re.sub(r"[^\w.-]+", "_", experiment_name).strip("._") or "experiment"
    return (Path(path).resolve().parent / "mlruns" / slug).as_uri()


@contextmanager
def _sqlite_creation_lock(uri: str, timeout: float = 120.0) -> Iterator[None]:
    """Serialise the first use of a SQLite store across processes (``flock`` on its folder).

    The first access of a fresh database runs MLflow's migrations; two processes doing that
    at once corrupt it ("table experiments already exists", "duplicate column name"). The
    lock makes that safe even without :func:`prepare_store`; it is a no-op for other stores,
    on systems without ``fcntl``, and after ``timeout`` seconds of waiting (with a warning).
    """
    path = _sqlite_path(uri) if _scheme(uri) == "sqlite" else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield
        return
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    _logger.warning("waited %.0f s for the lock on %s; going on", timeout, uri)
                    break
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _get_or_create_experiment(
    client: Any, uri: str, experiment_name: str, artifact_location: str | None = None
) -> str:
    """Experiment id for ``experiment_name``, creating it if needed (safe against races)."""
    with _sqlite_creation_lock(uri):
        return _get_or_create_experiment_unlocked(client, uri, experiment_name, artifact_location)


def _get_or_create_experiment_unlocked(
    client: Any, uri: str, experiment_name: str, artifact_location: str | None
) -> str:
    retries = _retries_for(uri)
    exp = _with_retry(
        client.get_experiment_by_name, experiment_name, retries=retries, what="get experiment"
    )
    if exp is None:
        location = artifact_location or _default_artifact_location(uri, experiment_name)
        try:
            return _with_retry(
                client.create_experiment,
                experiment_name,
                artifact_location=location,
                retries=retries,
                what="create experiment",
            )
        except Exception as e:
            if getattr(e, "error_code", None) != "RESOURCE_ALREADY_EXISTS" and (
                "already exists" not in str(e)
            ):
                raise
            # Another process created it between our get and create: use theirs.
            exp = client.get_experiment_by_name(experiment_name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise TrackingError(
            f"experiment {experiment_name!r} (id {exp.experiment_id}) is deleted in {uri}: "
            f"restore it with `mlflow experiments restore --experiment-id {exp.experiment_id}`"
            " or choose another logger.experiment_name"
        )
    return exp.experiment_id


def _run_tags(tags: Mapping[str, Any] | None, parent_run_id: str | None) -> dict[str, str]:
    """User tags plus MLflow's context tags (user, source, git commit) and the parent link."""
    out = {sanitize_key(k): str(v)[:MAX_TAG_VAL_LENGTH] for k, v in (tags or {}).items()}
    if parent_run_id:
        out[_PARENT_RUN_TAG] = parent_run_id
    try:
        from mlflow.tracking.context.registry import resolve_tags

        out = resolve_tags(out)
    except Exception as e:  # context tags are a nicety: never fail a run for them
        _logger.debug("could not resolve MLflow context tags: %s", e)
    return out


def _wrap_store_error(uri: str, what: str, exc: BaseException) -> TrackingError:
    text = str(exc)
    if _scheme(uri) == "sqlite" and any(
        t in text for t in ("already exists", "duplicate column", "alembic", "migration")
    ):
        return TrackingError(
            f"could not {what} in tracking store {uri}: {text.splitlines()[0][:300]}. "
            "Several processes probably created this SQLite store at once and left it half "
            "migrated: delete the file, then create it once with "
            "mlpx.tracking.prepare_store(uri, experiment_name) before parallel jobs start"
        )
    return TrackingError(
        f"could not {what} in tracking store {uri}: {text.splitlines()[0][:300]}. "
        f"Check the store with `mlflow ui --backend-store-uri {uri}` (or start a server with "
        f"`{_SERVER_HINT}`), or set logger.tracking_uri / MLFLOW_TRACKING_URI elsewhere"
    )


def prepare_store(
    uri: str | None, experiment_name: str, *, artifact_location: str | None = None
) -> str:
    """Create the store (SQLite tables) and the experiment; return the experiment id.

    Call once before parallel sweep jobs start, so that they never race to create a fresh
    SQLite database ("table experiments already exists"): the jobs then only read the schema
    and find the experiment. (Each first use of a SQLite store is also serialised by a lock
    on its folder, which covers jobs started without this; calling it keeps the ~2 s
    migration and any store error in one place, before the jobs.)
    """
    uri = check_tracking_uri(uri)
    try:
        client = _client(uri)
        return _get_or_create_experiment(client, uri, experiment_name, artifact_location)
    except TrackingError:
        raise
    except Exception as e:
        raise _wrap_store_error(uri, f"prepare experiment {experiment_name!r}", e) from e


def create_parent_run(
    uri: str | None,
    experiment_name: str,
    run_name: str | None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Open a parent run (e.g. one per sweep) and return its id; close it with :func:`end_run`.

    Child trackers pass ``parent_run_id=<this id>`` and carry the tag ``mlflow.parentRunId``,
    so the MLflow UI shows them nested under it.
    """
    uri = check_tracking_uri(uri)
    try:
        client = _client(uri)
        experiment_id = _get_or_create_experiment(client, uri, experiment_name)
        run = _with_retry(
            client.create_run,
            experiment_id,
            tags=_run_tags(tags, None),
            run_name=run_name,
            retries=_retries_for(uri),
            what="create parent run",
        )
    except TrackingError:
        raise
    except Exception as e:
        raise _wrap_store_error(uri, "create a parent run", e) from e
    return run.info.run_id


def end_run(uri: str | None, run_id: str, status: str = "FINISHED") -> None:
    """Mark ``run_id`` as ended with ``status`` (``FINISHED | FAILED | KILLED``)."""
    _check_status(status)
    uri = resolve_tracking_uri(uri)
    client = _client(uri)
    _with_retry(client.set_terminated, run_id, status, retries=_retries_for(uri), what="end run")


# --------------------------------------------------------------------------------------------
# MlflowTracker
# --------------------------------------------------------------------------------------------


#: Seconds that flush()/finish() wait for the background sender before going on without it.
_SENDER_TIMEOUT = 60.0
#: Seconds the sender pauses after a failed background send (so a refusing store is not
#: hammered on every log_metrics call); flush() and finish() do not wait for it.
_SENDER_PAUSE_AFTER_FAILURE = 1.0


class _SqliteMetricWriter:
    """Metric values of one run written straight into an MLflow SQLite store.

    MLflow's ``log_batch`` builds an ORM object per value: ~0.08 ms of CPU a value on
    SQLite, which is what tracking costs a run that logs every step (5 values a step on
    (a) of benchmarks/speed.py: +10% of training time, on a 2-core machine where every
    CPU cycle taken from OpenBLAS's two threads delays the GEMM). This writes the same
    rows with the DB-API's ``executemany`` into the tables of MLflow's own definitions
    (``metrics`` and ``latest_metrics`` of ``mlflow.store.tracking.dbmodels.models``,
    their columns checked), ~10x cheaper, in one transaction, with ``log_batch``'s
    semantics: NaN stored as 0 with ``is_nan``, +-inf as +-1.797e308, a value identical
    to one already logged (key, timestamp, step, value) dropped, ``latest_metrics`` moved
    to the value with the largest ``(step, timestamp, value)``, and nothing written to a
    run that is not active. ``tests/test_tracking.py`` holds the two paths to the same
    history and latest values through MLflow's client. Used only for SQLite stores whose
    tables have the expected columns; :meth:`create` returns None otherwise, and a write
    that fails for any other reason than a locked database makes the caller go back to
    ``log_batch`` for good.
    """

    _COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")  # a row's order

    def __init__(self, engine: Any, metrics: Any, latest: Any, runs: Any, run_id: str) -> None:
        import sqlalchemy as sa

        self.engine, self.latest, self.run_id = engine, latest, run_id
        columns, marks = ", ".join(self._COLUMNS), ", ".join("?" * len(self._COLUMNS))
        self._insert_metrics = f"INSERT OR IGNORE INTO {metrics.name} ({columns}) VALUES ({marks})"
        self._insert_latest = f"INSERT INTO {latest.name} ({columns}) VALUES ({marks})"
        self._stage = sa.select(runs.c.lifecycle_stage).where(runs.c.run_uuid == run_id)
        self._move_latest = (
            latest.update()
            .where(latest.c.run_uuid == run_id, latest.c.key == sa.bindparam("k"))
            .values(
                value=sa.bindparam("v"),
                timestamp=sa.bindparam("t"),
                step=sa.bindparam("s"),
                is_nan=sa.bindparam("n"),
            )
        )

    @classmethod
    def create(cls, client: Any, run_id: str) -> _SqliteMetricWriter | None:
        """The writer for ``run_id`` of ``client``'s store, or None when that is not a
        SQLite store of the expected schema (then ``log_batch`` is used)."""
        try:
            from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
            if not isinstance(store, SqlAlchemyStore) or store.engine.dialect.name != "sqlite":
                return None
            metrics, latest, runs = SqlMetric.__table__, SqlLatestMetric.__table__, SqlRun.__table__
            if not (
                set(cls._COLUMNS) == set(metrics.c.keys()) == set(latest.c.keys())
                and {"run_uuid", "lifecycle_stage"} <= set(runs.c.keys())
            ):
                return None
            return cls(store.engine, metrics, latest, runs, run_id)
        except Exception:  # another MLflow layout: log_batch it is
            return None

    def write(self, chunk: Sequence[tuple[str, float, int, int]]) -> bool:
        """Write ``(key, value, timestamp_ms, step)`` rows; False (nothing written) when the
        run is not active, so that ``log_batch`` raises MLflow's own error for it."""
        import sqlalchemy as sa

        run_id = self.run_id
        rows: list[tuple[Any, ...]] = []  # in the order of _COLUMNS
        seen: set[tuple[Any, ...]] = set()
        best: dict[str, tuple[Any, ...]] = {}  # key -> its row of largest (step, ts, value)
        for key, value, timestamp, step in chunk:
            is_nan = value != value
            if is_nan:
                value = 0.0
            elif math.isinf(value):
                value = 1.7976931348623157e308 if value > 0 else -1.7976931348623157e308
            row = (key, value, timestamp, step, is_nan, run_id)
            if row in seen:
                continue
            seen.add(row)
            rows.append(row)
            old = best.get(key)
            if old is None or (step, timestamp, value) > (old[3], old[2], old[1]):
                best[key] = row
        if not rows:
            return True
        latest = self.latest
        with self.engine.begin() as conn:
            if conn.execute(self._stage).scalar() != "active":
                return False
            # The DB-API's own executemany: SQLAlchemy's per-row parameter processing would
            # cost as much again (the columns were checked against MLflow's models).
            conn.exec_driver_sql(self._insert_metrics, rows)
            stored = {
                r.key: (r.step, r.timestamp, r.value)
                for r in conn.execute(
                    sa.select(
                        latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value
                    ).where(latest.c.run_uuid == run_id, latest.c.key.in_(list(best)))
                )
            }
            new = [row for key, row in best.items() if key not in stored]
            if new:
                conn.exec_driver_sql(self._insert_latest, new)
            moved = [
                {"v": row[1], "t": row[2], "s": row[3], "n": row[4], "k": key}
                for key, row in best.items()
                if key in stored and (row[3], row[2], row[1]) > stored[key]
            ]
            if moved:
                conn.execute(self._move_latest, moved)
        return True


class _RunState:
    """What is needed to send metrics and end a run, without a reference to the tracker itself.

    Held by the tracker, by a ``weakref.finalize`` (run ended if the tracker is garbage
    collected unfinished), by the process-exit hook (run ended if the process exits first) and
    by the background sender thread (one per run, a daemon started on the first due send).

    Locks: ``lock`` guards the buffer, the counters and the sender's wake-up condition; it is
    held only for list operations, never while the store is called. ``send_lock`` serialises
    ``log_batch`` calls: a chunk is taken from the front of the buffer and sent while it is
    held, so values reach the store in logging order, and a chunk that cannot be sent goes
    back to the front. ``end_lock`` makes the run end once. ``lock`` and ``send_lock`` are
    re-entrant because a finalizer may run on any thread, in the middle of anything.
    """

    def __init__(self, client: Any, uri: str, run_id: str, *, direct: bool = True) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        # Metric values go straight into a SQLite store's tables when it is one (see
        # _SqliteMetricWriter); None: MLflow's log_batch.
        self.writer = _SqliteMetricWriter.create(client, run_id) if direct else None
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.send_lock = threading.RLock()
        self.end_lock = threading.RLock()
        self.buffer: list[tuple[str, float, int, int]] = []  # (key, value, timestamp_ms, step)
        self.in_flight = 0  # values taken out of the buffer by a send that is not over yet
        self.closing = False  # end() started: log_metrics refuses new values
        self.status = "RUNNING"
        self.retries = _retries_for(uri)
        self.n_batches = 0
        self.n_values = 0
        self._wake = threading.Condition(self.lock)
        self._request: int | None = None  # min_chunk of the send the sender is asked to do
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"

    # -- the background sender -----------------------------------------------------------

    def request_send(self, min_chunk: int) -> None:
        """Wake the sender thread (starting it if needed) to send; returns at once.

        Cheap (the caller may hold ``lock``); requests made while the sender is busy are
        merged into one.
        """
        with self.lock:
            if self._stop:
                return
            self._request = min_chunk if self._request is None else min(self._request, min_chunk)
            thread = self._thread
            if thread is None or not thread.is_alive():  # first send (or after a fork)
                thread = threading.Thread(
                    target=self._sender_loop, name=f"mlpx-metrics-{self.run_id[:8]}", daemon=True
                )
                self._thread = thread
                thread.start()
            self._wake.notify()

    def _sender_loop(self) -> None:
        while True:
            with self.lock:
                while self._request is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                min_chunk, self._request = self._request, None
            try:
                self.send_metrics(min_chunk)
            except Exception as e:
                with self.lock:
                    kept = len(self.buffer)
                _logger.warning(
                    "run %s: could not send metric values in the background (%d kept for the "
                    "next send; flush() or finish() will try again): %s",
                    self.run_id,
                    kept,
                    e,
                )
                deadline = time.monotonic() + _SENDER_PAUSE_AFTER_FAILURE
                with self.lock:  # new requests do not end the pause; stop_sender() does
                    while not self._stop and (left := deadline - time.monotonic()) > 0:
                        self._wake.wait(left)

    def stop_sender(self, timeout: float = _SENDER_TIMEOUT) -> bool:
        """Stop the sender thread after its current send; False if it is still busy after
        ``timeout`` seconds (it is a daemon: it never keeps the process alive)."""
        with self.lock:
            self._stop = True
            self._request = None
            self._wake.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True  # a finalizer running on the sender thread itself
        thread.join(timeout)
        return not thread.is_alive()

    # -- sending and ending --------------------------------------------------------------

    def send_metrics(self, min_chunk: int = 1, lock_timeout: float | None = None) -> None:
        """Send the buffer with ``log_batch`` (<= 1000 values per call), oldest values first.

        Stops once fewer than ``min_chunk`` values are left (so a count-triggered send of
        1002 values makes one call of 1000 and keeps 2 for the next one). A chunk that cannot
        be sent even after retries goes back to the front of the buffer and the error is
        raised. Waits at most ``lock_timeout`` seconds (None: as long as needed) for a send
        in progress on another thread, then sends anyway.
        """
        from mlflow.entities import Metric

        acquired = self.send_lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout)
        if not acquired:
            _logger.warning(
                "run %s: the metric sender has been busy for %.0f s; sending without it",
                self.run_id,
                lock_timeout,
            )
        try:
            while True:
                with self.lock:
                    if not self.buffer or len(self.buffer) < min_chunk:
                        return
                    chunk = self.buffer[:MAX_METRICS_PER_BATCH]
                    del self.buffer[: len(chunk)]
                    self.in_flight += len(chunk)
                sent = False
                try:
                    if self._write_direct(chunk):
                        sent = True
                        continue
                    metrics = [Metric(k, v, ts, step) for k, v, ts, step in chunk]
                    _with_retry(
                        self.client.log_batch,
                        self.run_id,
                        metrics=metrics,
                        retries=self.retries,
                        what=f"log_batch of {len(metrics)} metrics",
                    )
                    sent = True
                finally:
                    with self.lock:
                        self.in_flight -= len(chunk)
                        if sent:
                            self.n_batches += 1
                            self.n_values += len(chunk)
                        else:  # never lose values: back to the front, in order
                            self.buffer[:0] = chunk
        finally:
            if acquired:
                self.send_lock.release()

    def _write_direct(self, chunk: list[tuple[str, float, int, int]]) -> bool:
        """Send ``chunk`` with the SQLite writer. False: send it with ``log_batch`` (the run
        is not active and MLflow should say so; or the writer failed, and is dropped)."""
        writer = self.writer
        if writer is None:
            return False
        try:
            return _with_retry(
                writer.write,
                chunk,
                retries=self.retries,
                what=f"writing {len(chunk)} metric values",
            )
        except Exception as e:
            self.writer = None
            _logger.warning(
                "run %s: writing metric values straight into the SQLite store failed (%s); "
                "sending them with MLflow's log_batch from now on",
                self.run_id,
                _short_reason(e),
            )
            return False

    def end(self, status: str, error: str | None) -> None:
        """Stop the sender, flush, record the error, set the terminal status.

        Raises the first failure (after doing all it can).
        """
        with self.end_lock:
            if self.finished:
                return
            with self.lock:
                self.closing = True
            stopped = self.stop_sender()
            first_error: BaseException | None = None
            try:
                # The sender is gone (or hung for a minute): what is left goes from here.
                self.send_metrics(lock_timeout=_SENDER_TIMEOUT if stopped else 1.0)
            except Exception as e:
                first_error = e
                _logger.warning(
                    "run %s: %d buffered metric values could not be sent: %s",
                    self.run_id,
                    len(self.buffer),
                    e,
                )
            if error:
                try:
                    from mlflow.entities import RunTag

                    _with_retry(
                        self.client.log_batch,
                        self.run_id,
                        tags=[RunTag(_ERROR_TAG, error[:MAX_TAG_VAL_LENGTH])],
                        retries=self.retries,
                        what="set error tag",
                    )
                    self.client.log_text(self.run_id, error, _ERROR_ARTIFACT)
                except Exception as e:
                    first_error = first_error or e
                    _logger.warning("run %s: could not record the error: %s", self.run_id, e)
            try:
                _with_retry(
                    self.client.set_terminated,
                    self.run_id,
                    status,
                    retries=self.retries,
                    what="end run",
                )
                self.status = status
            except Exception as e:
                first_error = first_error or e
                _logger.warning("run %s: could not set status %s: %s", self.run_id, status, e)
                self.status = f"{status} (not recorded)"  # no second try from the exit hook
            finally:
                _LIVE_RUNS.discard(self)
            if first_error is not None:
                raise first_error

    def abandon(self, status: str, error: str) -> None:
        """End the run from a finalizer or the exit hook: never raises."""
        if self.finished or os.getpid() != self.pid:
            return
        try:
            self.end(status, error)
        except Exception as e:
            _logger.warning("run %s could not be ended as %s: %s", self.run_id, status, e)


_LIVE_RUNS: set[_RunState] = set()
_EXIT_HOOK_REGISTERED = False


def _end_live_runs_at_exit() -> None:
    """Exit hook: end runs whose tracker never called finish()."""
    # Set when the interpreter dies of an uncaught exception (last_exc from Python 3.12).
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is not None:
        status, error = _status_for_exception(type(exc), exc, exc.__traceback__)
        error = f"process exited with an uncaught exception before finish():\n{error}"
    else:
        status, error = "KILLED", "process exited without calling finish() on the tracker"
    for state in list(_LIVE_RUNS):
        state.abandon(status, error or "")


def _register_exit_hook() -> None:
    # Registered after mlflow is imported, so (atexit being LIFO) it runs before mlflow's
    # own exit handlers tear down its clients.
    global _EXIT_HOOK_REGISTERED
    if not _EXIT_HOOK_REGISTERED:
        atexit.register(_end_live_runs_at_exit)
        _EXIT_HOOK_REGISTERED = True


class MlflowTracker:
    """A run in an MLflow tracking store, written through ``MlflowClient``.

    Args:
        tracking_uri: where to record; None -> ``MLFLOW_TRACKING_URI`` or MLflow's default
            ``sqlite:///<cwd>/mlflow.db`` (see :func:`resolve_tracking_uri`).
        experiment_name: created if missing (race-safe).
        run_name: shown in the UI (tag ``mlflow.runName``); None lets MLflow pick one.
        parent_run_id: nest this run under a parent (tag ``mlflow.parentRunId``).
        tags: extra run tags (MLflow's user/source/git tags are added).
        flush_every: send buffered metric values once this many are waiting.
        flush_seconds: ... or once this many seconds passed since the last send (checked on
            each ``log_metrics`` call).
        artifact_location: for a new experiment; default beside a SQLite database, else the
            server's choice.
        resume_run_id: continue this existing run (set RUNNING again, metrics appended)
            instead of creating one.
        direct_sqlite: on a SQLite store, write metric values straight into MLflow's
            ``metrics``/``latest_metrics`` tables (~10x less CPU than ``log_batch``, the same
            rows; see :class:`_SqliteMetricWriter`). False: always ``log_batch``.

    Metrics are buffered and sent with ``log_batch`` (<= 1000 values per call) by a
    background daemon thread (one per run, started on the first due send), so logging does
    not wait for the store; :meth:`flush` and :meth:`finish` wait for it and send the rest on
    the calling thread. Values that cannot be sent stay buffered, in order, until they can.
    Params, tags and artifacts are written on the calling thread, params and tags in batches
    of 100. Transient store errors ("database is locked") are retried with backoff. A tracker
    that is garbage collected, or whose process exits, without :meth:`finish` ends its run as
    KILLED (FAILED, with the traceback, if the process died of an exception), its buffered
    metrics sent first. Usable as a context manager: an exception inside ends the run FAILED.

    Raises:
        TrackingError: the store cannot be reached or the run cannot be created.
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment_name: str,
        run_name: str | None,
        *,
        parent_run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        flush_every: int = 1000,
        flush_seconds: float = 5.0,
        artifact_location: str | None = None,
        resume_run_id: str | None = None,
        direct_sqlite: bool = True,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be a positive integer, got {flush_every}")
        if flush_seconds < 0:
            raise ValueError(f"flush_seconds must be >= 0, got {flush_seconds}")
        self.tracking_uri = check_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.parent_run_id = parent_run_id
        self.flush_every = int(flush_every)
        self.flush_seconds = float(flush_seconds)
        self._last_flush = time.monotonic()
        self._keys: dict[str, str] = {}  # metric key -> sanitised key (cache: hot path)
        self._params: dict[str, str] = {}  # what was logged, to skip re-logging
        uri = self.tracking_uri
        retries = _retries_for(uri)
        try:
            self._client = _client(uri)
            self.experiment_id = _get_or_create_experiment(
                self._client, uri, experiment_name, artifact_location
            )
            if resume_run_id is None:
                run = _with_retry(
                    self._client.create_run,
                    self.experiment_id,
                    tags=_run_tags(tags, parent_run_id),
                    run_name=run_name,
                    retries=retries,
                    what="create run",
                )
            else:  # continue an existing run: RUNNING again, its history kept
                run = self._client.get_run(resume_run_id)
                _with_retry(
                    self._client.update_run,
                    resume_run_id,
                    status="RUNNING",
                    retries=retries,
                    what="reopen run",
                )
        except TrackingError:
            raise
        except Exception as e:
            raise _wrap_store_error(
                uri, f"create a run in experiment {experiment_name!r}", e
            ) from e
        self.run_id: str | None = run.info.run_id
        self.run_name: str = run.info.run_name
        self.artifact_uri: str = run.info.artifact_uri
        self._state = _RunState(self._client, uri, run.info.run_id, direct=direct_sqlite)
        _LIVE_RUNS.add(self._state)
        _register_exit_hook()
        self._finalizer = weakref.finalize(
            self,
            self._state.abandon,
            "KILLED",
            "tracker was garbage collected without finish()",
        )
        self._finalizer.atexit = False  # the exit hook handles exits, with the right status

    # -- logging -------------------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (nested dicts are flattened; values -> str, truncated to 6000 chars).

        A key already logged with the same value is skipped; with a different value it is
        skipped with a warning (MLflow params are immutable).
        """
        from mlflow.entities import Param

        todo: dict[str, str] = {}
        for key, value in flatten(params).items():
            key, text = sanitize_key(key), _param_value(value)
            old = self._params.get(key, todo.get(key))
            if old is None:
                todo[key] = text
            elif old != text:
                _logger.warning(
                    "param %r already logged as %r; MLflow params are immutable, so %r is "
                    "dropped (log it as a metric or tag if it changes during the run)",
                    key,
                    old,
                    text,
                )
        items = [Param(k, v) for k, v in todo.items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(self._client.log_batch, self._run_id, params=list(chunk), what="log params")
        self._params.update(todo)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags (values -> str, truncated to 8000 chars), in batches of 100."""
        from mlflow.entities import RunTag

        items = [
            RunTag(sanitize_key(k), str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in dict(tags).items()
        ]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(self._client.log_batch, self._run_id, tags=list(chunk), what="set tags")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer one value per key at ``step``; returns without waiting for the store.

        When ``flush_every`` values are waiting, or ``flush_seconds`` passed since the last
        send, the background sender is woken to send them. If a background send fails even
        after retries, the values stay buffered (a warning is logged) and go with the next
        send; :meth:`flush` and :meth:`finish` raise instead.
        """
        timestamp = int(time.time() * 1000)
        step = int(step)
        keys = self._keys
        rows = []
        for key, value in metrics.items():
            name = keys.get(key)
            if name is None:
                name = keys[key] = sanitize_key(key)
            rows.append((name, _metric_value(key, value), timestamp, step))
        state = self._state
        with state.lock:
            if state.closing:
                raise TrackingError(
                    f"run {self.run_id} is finished: metrics can no longer be logged"
                )
            state.buffer.extend(rows)
            now = time.monotonic()
            if now - self._last_flush >= self.flush_seconds:
                min_chunk = 1  # time is up: send everything
            elif len(state.buffer) >= self.flush_every:
                min_chunk = min(self.flush_every, MAX_METRICS_PER_BATCH)  # only full batches
            else:
                return
            self._last_flush = now
            state.request_send(min_chunk)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file (or a whole folder) into the run's artifacts under ``artifact_path``."""
        path = os.fspath(path)
        fn = self._client.log_artifacts if os.path.isdir(path) else self._client.log_artifact
        self._call(fn, self._run_id, path, artifact_path, what=f"log artifact {path}")

    def log_figure(self, figure: Any, name: str, *, dpi: int = 110) -> None:
        """Save a matplotlib figure as the artifact file ``name`` (e.g. ``figures/x.png``), then
        close it."""
        try:
            self._call(
                self._client.log_figure,
                self._run_id,
                figure,
                name,
                save_kwargs={"dpi": dpi, "bbox_inches": "tight"},
                what=f"log figure {name}",
            )
        finally:
            _close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        """Save ``text`` as the artifact file ``name`` (e.g. ``"config.yaml"``)."""
        self._call(self._client.log_text, self._run_id, text, name, what=f"log text {name}")

    def flush(self) -> None:
        """Send every buffered metric value now, on this thread; return once all are stored.

        Waits for the background sender's send in progress (at most 60 s) first. Raises if
        the store refuses the values (they stay buffered).
        """
        self._state.send_metrics(lock_timeout=_SENDER_TIMEOUT)
        self._last_flush = time.monotonic()

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Flush, record ``error`` (tag ``error`` + artifact ``error.txt``), end the run.

        Stops the background sender (waiting at most 60 s for its send in progress) and sends
        every value still buffered before the status is set. Idempotent: later calls do
        nothing. Raises (after ending the run as well as it can) only when ``status`` is
        FINISHED and something could not be written; on the failure paths (FAILED/KILLED)
        problems are logged, so the original exception stays visible.
        """
        _check_status(status)
        if self._state.finished:
            return
        try:
            self._state.end(status, error)
        except Exception as e:
            if status == "FINISHED":
                raise TrackingError(
                    f"run {self.run_id} in {self.tracking_uri} could not be finished cleanly: {e}"
                ) from e
        finally:
            self._finalizer.detach()

    # -- internals -----------------------------------------------------------------------

    @property
    def _run_id(self) -> str:
        return self._state.run_id

    @property
    def status(self) -> str:
        """``RUNNING`` until :meth:`finish`, then the status that was set."""
        return self._state.status

    @property
    def buffered(self) -> int:
        """Metric values not in the store yet (waiting, or in a send that is not over)."""
        state = self._state
        with state.lock:
            return len(state.buffer) + state.in_flight

    def _call(self, fn: Callable[..., _T], *args: Any, what: str, **kwargs: Any) -> _T:
        return _with_retry(fn, *args, retries=self._state.retries, what=what, **kwargs)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(*_status_for_exception(exc_type, exc, tb))

    def __repr__(self) -> str:
        return (
            f"MlflowTracker(uri={self.tracking_uri!r}, experiment={self.experiment_name!r}, "
            f"run_name={self.run_name!r}, run_id={self.run_id!r}, status={self.status!r}, "
            f"buffered={self.buffered}, sent={self._state.n_values} values in "
            f"{self._state.n_batches} batches)"
        )

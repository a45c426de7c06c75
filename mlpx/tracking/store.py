"""Tracking stores: where runs go, whether they can go there, and the calls made once per store.

Where runs go (:func:`resolve_tracking_uri`): an explicit ``tracking_uri`` wins, then
``MLFLOW_TRACKING_URI``, then MLflow's own default, which in MLflow 3.x is
``sqlite:///<cwd>/mlflow.db`` (``mlflow ui`` started in the same directory shows the runs).
Relative SQLite paths are made absolute at resolution time so sweep jobs that change directory
still share one database. On SQLite stores, experiments created here keep their artifacts next
to the database, in ``<db folder>/mlruns/<experiment>``.

Whether they can (:func:`check_tracking_uri`): a short HTTP probe of a server (MLflow's own
client retries for minutes against a dead one), a writable folder for SQLite and file stores.

Sweeps: :func:`prepare_store` creates the database and the experiment once, before parallel
jobs start (two processes creating a fresh SQLite store at once corrupt it: "table experiments
already exists", "duplicate column name"; as a second line of defence the first use of a
SQLite store also holds an ``flock`` on its folder, :func:`sqlite_creation_lock`);
:func:`create_parent_run` opens one parent run and every job's tracker passes
``parent_run_id`` so it shows nested under it; :func:`end_run` closes the parent.

Store errors are retried by :func:`with_retry` when :func:`is_transient` says so, which
decides by exception type: MLflow's ``MlflowException.error_code`` (its SQL store reports a
locked database as ``TEMPORARILY_UNAVAILABLE``), SQLite's ``SQLITE_BUSY``/``SQLITE_LOCKED``
result codes (raw or inside ``sqlalchemy.exc.DBAPIError``), a connection SQLAlchemy
invalidated, and requests' / Python's connection errors and timeouts.

mlflow, requests and sqlalchemy are imported inside the functions that need them (``import
mlflow`` takes 3-6 s); exception types of libraries are looked up in ``sys.modules``, since an
exception of a library that was never imported cannot occur.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mlpx.redact import mask_secrets
from mlpx.tracking.base import MAX_TAG_VAL_LENGTH, TrackingError, check_status, sanitize_key

__all__ = [
    "check_tracking_uri",
    "create_parent_run",
    "end_run",
    "get_or_create_experiment",
    "is_permanent",
    "is_transient",
    "open_client",
    "prepare_store",
    "resolve_tracking_uri",
    "retries_for",
    "run_tags",
    "short_reason",
    "sqlite_creation_lock",
    "sqlite_path",
    "store_error",
    "uri_scheme",
    "with_retry",
]

_logger = logging.getLogger("mlpx.tracking")

PARENT_RUN_TAG = "mlflow.parentRunId"
SERVER_HINT = "mlflow server --host 127.0.0.1 --port 5000"
_SET_URI_HINT = "set logger.tracking_uri / MLFLOW_TRACKING_URI to a reachable store"

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Tracking URIs: resolution and checks
# --------------------------------------------------------------------------------------------


def uri_scheme(uri: str) -> str:
    """The lower-case scheme of ``uri`` (``"sqlite"``, ``"http"`` ...); ``""`` for a plain path."""
    return uri.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][\w+.-]*:", uri) else ""


def sqlite_path(uri: str) -> str | None:
    """The file path of a ``sqlite:///path`` URI; None for in-memory databases and for URIs
    of other schemes."""
    if uri_scheme(uri) != "sqlite":
        return None
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
    if uri_scheme(uri) == "sqlite":
        path = sqlite_path(uri)
        if path is not None and not os.path.isabs(path):
            query = uri.split("?", 1)[1] if "?" in uri else ""
            uri = "sqlite:///" + os.path.abspath(path) + (f"?{query}" if query else "")
    return uri


def short_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: ``"connection refused"``, ``"timed out"``,
    ``"name or service not known"``; else ``"<ExceptionType>: <message>"``.

    requests wraps the operating system's error several levels deep (ConnectionError ->
    urllib3's MaxRetryError -> NewConnectionError -> ConnectionRefusedError): the first
    ``OSError`` with a ``strerror`` found in that chain gives the words.
    """
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, TimeoutError):
        return "timed out"
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and isinstance(e.strerror, str) and e.strerror:
            return e.strerror.strip().rstrip(".").lower()
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
    text, name = str(exc), type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


def _server_hint(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0") and parts.port:
        return f"mlflow server --host {parts.hostname} --port {parts.port}"
    return SERVER_HINT


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
            f"tracking server {uri} cannot be reached ({short_reason(e)}): start it with "
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
    - ``sqlite:///path``: the folder exists and is writable (and the file, if present);
      an in-memory database (``sqlite:///:memory:``, ``sqlite:///``) is refused.
    - ``file:`` or a plain path (the legacy file store): MLflow 3 refuses it unless
      ``MLFLOW_ALLOW_FILE_STORE=true``; the folder above it must be writable.
    - other schemes (``postgresql://``, ``databricks`` ...) are returned unchecked.

    Raises:
        TrackingError: with a message naming the URI and what to do next.
    """
    uri = resolve_tracking_uri(uri)
    scheme = uri_scheme(uri)
    if scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None:  # sqlite:///:memory:, sqlite:/// and sqlite://: gone with the process
            raise TrackingError(
                f"logger.tracking_uri={uri} is an in-memory SQLite database, a store that "
                "keeps nothing once the run ends: name a file, e.g. "
                "logger.tracking_uri=sqlite:///mlflow.db"
            )
        else:
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
# Retries
# --------------------------------------------------------------------------------------------

#: MLflow error codes of errors that may pass (``mlflow.protos.databricks_pb2`` names; its SQL
#: store reports any ``sqlalchemy.exc.OperationalError``, a locked database too, as the first).
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"}
#: SQLite's primary result codes for "another connection holds the lock" (SQLITE_BUSY,
#: SQLITE_LOCKED in sqlite3.h; stable C API values, so sqlite3 need not be imported).
_SQLITE_BUSY_CODES = {5, 6}


def is_transient(exc: BaseException) -> bool:
    """Whether a failed store call may succeed if tried again, by the exception's type.

    True for Python's ``ConnectionError``/``TimeoutError``, requests' ``ConnectionError``/
    ``Timeout``, an ``MlflowException`` whose ``error_code`` is ``TEMPORARILY_UNAVAILABLE``,
    ``RESOURCE_EXHAUSTED`` or ``REQUEST_LIMIT_EXCEEDED``, a SQLAlchemy error whose connection
    was invalidated, and a ``sqlite3`` error of result code ``SQLITE_BUSY``/``SQLITE_LOCKED``
    ("database is locked"), raw or wrapped by SQLAlchemy. Everything else is final.
    """
    if is_permanent(exc):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    if mlflow_exceptions is not None and isinstance(exc, mlflow_exceptions.MlflowException):
        return exc.error_code in _TRANSIENT_CODES
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig  # the driver's own exception
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
        return code is not None and code & 0xFF in _SQLITE_BUSY_CODES
    return False


#: Errors no retry can cure: a full disk or quota, no permission, a read-only file system
#: (errno values; SQLite's SQLITE_PERM, SQLITE_READONLY, SQLITE_FULL result codes; and the
#: words they come with where MLflow keeps only the text).
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
_SQLITE_PERMANENT_CODES = {3, 8, 13}
_PERMANENT_WORDS = (
    "database or disk is full",
    "no space left on device",
    "disk quota exceeded",
    "readonly database",
    "read-only file system",
    "permission denied",
)


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) says the disk is full, a quota is reached,
    or the store cannot be written (permission, read-only): retrying cannot help."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _PERMANENT_ERRNOS:
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_PERMANENT_CODES:
            return True
        if any(w in str(e).lower() for w in _PERMANENT_WORDS):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return False


def with_retry(
    fn: Callable[..., _T],
    *args: Any,
    retries: int = 5,
    base_delay: float = 0.1,
    what: str = "tracking call",
    **kwargs: Any,
) -> _T:
    """Call ``fn(*args, **kwargs)``; on a transient error (:func:`is_transient`) retry up to
    ``retries`` times with jittered exponential backoff (0.1 s, 0.2 s, ... times 1-2), logging
    a warning naming ``what`` each time. Other errors, and the last one, are raised."""
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if attempt >= retries or not is_transient(e):
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


def retries_for(uri: str) -> int:
    """How many times :func:`with_retry` should retry calls to the store at ``uri``: 0 over
    HTTP(S), where MLflow's REST client already retries connection errors, 429 and 5xx with
    backoff (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``: retrying on top would multiply minutes), else 5.
    """
    return 0 if uri_scheme(uri) in ("http", "https") else 5


# --------------------------------------------------------------------------------------------
# Store-level calls: clients, experiments, parent runs
# --------------------------------------------------------------------------------------------


def open_client(uri: str) -> Any:
    """An ``mlflow.tracking.MlflowClient`` for ``uri``. A SQLite store is checked first, under
    :func:`sqlite_creation_lock`: a missing one is created atomically, a half-made one with no
    runs rebuilt, one another process is creating waited for
    (:func:`mlpx.tracking.sqlite_store.ensure_sqlite_store`)."""
    from mlflow.tracking import MlflowClient

    with sqlite_creation_lock(uri):
        path = sqlite_path(uri)
        if path is not None:  # created atomically; a half-made one rebuilt or waited for
            from mlpx.tracking.sqlite_store import ensure_sqlite_store

            ensure_sqlite_store(path)
        return MlflowClient(tracking_uri=uri)


def _default_artifact_location(uri: str, experiment_name: str) -> str | None:
    """On SQLite stores, artifacts live beside the database: ``<db folder>/mlruns/<name>``."""
    path = sqlite_path(uri)
    if path is None:
        return None
    slug = re.sub(r"[^\w.-]+", "_", experiment_name).strip("._") or "experiment"
    return (Path(path).resolve().parent / "mlruns" / slug).as_uri()


@contextmanager
def sqlite_creation_lock(uri: str, timeout: float = 120.0) -> Iterator[None]:
    """Serialise the first use of a SQLite store across processes (``flock`` on its folder).

    The first access of a fresh database runs MLflow's migrations; two processes doing that
    at once corrupt it ("table experiments already exists", "duplicate column name"). The
    lock makes that safe even without :func:`prepare_store`; it is a no-op for other stores,
    on systems without ``fcntl``, and after ``timeout`` seconds of waiting (with a warning).
    """
    path = sqlite_path(uri)
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


def get_or_create_experiment(
    client: Any, uri: str, experiment_name: str, artifact_location: str | None = None
) -> str:
    """Experiment id for ``experiment_name``, creating it if needed (safe against races)."""
    with sqlite_creation_lock(uri):
        return _get_or_create_unlocked(client, uri, experiment_name, artifact_location)


def _get_or_create_unlocked(
    client: Any, uri: str, experiment_name: str, artifact_location: str | None
) -> str:
    retries = retries_for(uri)
    exp = with_retry(
        client.get_experiment_by_name, experiment_name, retries=retries, what="get experiment"
    )
    if exp is None:
        location = artifact_location or _default_artifact_location(uri, experiment_name)
        try:
            return with_retry(
                client.create_experiment,
                experiment_name,
                artifact_location=location,
                retries=retries,
                what="create experiment",
            )
        except Exception as e:
            # MLflow's SQL store and its REST client both report the name taken as
            # MlflowException(error_code="RESOURCE_ALREADY_EXISTS").
            if getattr(e, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
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


def run_tags(tags: Mapping[str, Any] | None, parent_run_id: str | None) -> dict[str, str]:
    """User tags plus MLflow's context tags (user, source, git commit) and the parent link."""
    given = (tags or {}).items()
    out = {sanitize_key(k): mask_secrets(str(v))[:MAX_TAG_VAL_LENGTH] for k, v in given}
    if parent_run_id:
        out[PARENT_RUN_TAG] = parent_run_id
    try:
        from mlflow.tracking.context.registry import resolve_tags

        out = resolve_tags(out)
    except Exception as e:  # context tags are a nicety: never fail a run for them
        _logger.debug("could not resolve MLflow context tags: %s", e)
    return out


#: Words of the errors a half-migrated SQLite store gives (see :func:`store_error`).
_HALF_MIGRATED = ("already exists", "duplicate column", "alembic", "migration")


def store_error(uri: str, what: str, exc: BaseException) -> TrackingError:
    """A :class:`TrackingError` for ``exc``, raised while trying to ``what`` in the store at
    ``uri``, that says what to do next."""
    text = str(exc)
    first = (text.splitlines() or [type(exc).__name__])[0][:300]
    if is_permanent(exc):
        where = sqlite_path(uri) or uri
        words = [w for w in _PERMANENT_WORDS if w in text.lower()]
        first = words[0] if words else first
        return TrackingError(
            f"could not {what} in tracking store {uri}: {first}. Not retried: the disk "
            f"holding {where} is full or not writable; free space or fix its permissions, "
            "or set logger.tracking_uri elsewhere"
        )
    # Text, not type: SQLite reports a half-made schema ("table experiments already exists",
    # "duplicate column name") with its generic SQLITE_ERROR result code, the same as any
    # other SQL error, and MLflow passes alembic's and SQLAlchemy's errors on unchanged.
    if uri_scheme(uri) == "sqlite" and any(t in text for t in _HALF_MIGRATED):
        return TrackingError(
            f"could not {what} in tracking store {uri}: {first}. The store's schema is "
            "incomplete (a process stopped while creating or upgrading it): if it holds no "
            "runs, mlpx rebuilds it on the next run; else back it up and run "
            f"`mlflow db upgrade {uri}`"
        )
    return TrackingError(
        f"could not {what} in tracking store {uri}: {text.splitlines()[0][:300]}. "
        f"Check the store with `mlflow ui --backend-store-uri {uri}` (or start a server with "
        f"`{SERVER_HINT}`), or set logger.tracking_uri / MLFLOW_TRACKING_URI elsewhere"
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
        client = open_client(uri)
        return get_or_create_experiment(client, uri, experiment_name, artifact_location)
    except TrackingError:
        raise
    except Exception as e:
        raise store_error(uri, f"prepare experiment {experiment_name!r}", e) from e


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
        client = open_client(uri)
        experiment_id = get_or_create_experiment(client, uri, experiment_name)
        run = with_retry(
            client.create_run,
            experiment_id,
            tags=run_tags(tags, None),
            run_name=mask_secrets(run_name),
            retries=retries_for(uri),
            what="create parent run",
        )
    except TrackingError:
        raise
    except Exception as e:
        raise store_error(uri, "create a parent run", e) from e
    return run.info.run_id


def end_run(uri: str | None, run_id: str, status: str = "FINISHED") -> None:
    """Mark ``run_id`` as ended with ``status`` (``FINISHED | FAILED | KILLED``)."""
    check_status(status)
    uri = resolve_tracking_uri(uri)
    client = open_client(uri)
    with_retry(client.set_terminated, run_id, status, retries=retries_for(uri), what="end run")


def kill_if_running(client: Any, run_id: str, why: str, retries: int = 0) -> bool:
    """End ``run_id`` KILLED with tag ``error`` = ``why`` when it is still RUNNING (a run
    whose process died without ending it); False when it had already ended."""
    from mlpx.tracking.base import ERROR_TAG

    if client.get_run(run_id).info.status != "RUNNING":
        return False
    with_retry(client.set_tag, run_id, ERROR_TAG, why, retries=retries, what="set tag")
    with_retry(client.set_terminated, run_id, "KILLED", retries=retries, what="end run")
    return True

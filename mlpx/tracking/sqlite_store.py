"""Creating a SQLite tracking store atomically, and repairing one left half-made.

MLflow creates a fresh SQLite store in place: it makes the file, the initial tables, then runs
its ~60 schema migrations. A signal or a full disk in between leaves a file that every later
process tries to migrate again and fails on (``table _alembic_tmp_metrics already exists``).
:func:`ensure_sqlite_store`, called under :func:`mlpx.tracking.store.sqlite_creation_lock`
before a client opens the store:

* a missing store is built in a temporary file beside it, through MLflow's own client, and
  appears under its name only when complete (``os.link``: atomic, and it fails if another
  process, ``mlflow ui`` say, created the file meanwhile);
* an existing store is read (with ``sqlite3``) and counts as complete when it has an
  ``alembic_version`` (the schema head of the installed MLflow, if the file was written in
  the last :data:`QUIET_SECONDS`) and no ``_alembic_tmp_`` table is left; an incomplete one
  still changing (written in the last :data:`QUIET_SECONDS`: another process is creating
  it) is waited for; one that stopped
  changing and holds no runs is moved aside (``<name>.broken-<time>``) and created afresh;
  one that holds runs is left alone, with a one-line error.

MLflow's schema head comes from ``mlflow.store.db.utils._get_latest_schema_revision`` (MLflow
has no public call for it); this module is the only user, and tests/test_reliability_store.py
fails if it moves. Without it, a store counts as complete when it has a version row and no
``_alembic_tmp_`` table. Reading it parses all of MLflow's migration scripts (~0.35 s), so
the head is kept in :data:`SCHEMA_HEAD_FILE` in mlpx's cache folder
(:func:`mlpx.user_cache.cache_home`), under a key that changes with MLflow: its version,
the migrations folder, its mtime and the scripts' names. A missing, damaged or stale file
is computed again and rewritten; one that cannot be written is no error.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mlpx.tracking.base import TrackingError
from mlpx.user_cache import cache_home, read_json, write_json

__all__ = [
    "QUIET_SECONDS",
    "SCHEMA_HEAD_FILE",
    "StoreState",
    "compute_schema_head",
    "ensure_sqlite_store",
    "inspect_store",
    "quiet_permanent_errors",
    "schema_head",
    "schema_head_key",
]

_logger = logging.getLogger("mlpx.tracking")

#: An incomplete store not written for this long is taken as abandoned (MLflow's migrations
#: of a fresh store write every few milliseconds).
QUIET_SECONDS = 10.0
_checked: set[str] = set()  # stores found complete by this process


#: The cached schema head, in :func:`mlpx.user_cache.cache_home`.
SCHEMA_HEAD_FILE = "mlflow_schema_head.json"


def compute_schema_head() -> str | None:
    """The schema revision a complete store of the installed MLflow has, read from MLflow's
    migration scripts (~0.35 s), or None."""
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return str(_get_latest_schema_revision())
    except Exception:  # pragma: no cover - MLflow moved it: fall back to the weaker check
        return None


def schema_head_key() -> dict[str, Any] | None:
    """What the installed MLflow's schema head depends on (without importing MLflow): its
    version, its migrations folder, the folder's mtime and the scripts' names; None when
    they cannot be found."""
    from importlib import metadata, util

    try:
        spec = util.find_spec("mlflow")
        where = list(spec.submodule_search_locations or []) if spec else []
        folder = Path(where[0]) / "store" / "db_migrations" / "versions"
        names = sorted(n for n in os.listdir(folder) if n.endswith(".py"))
        return {
            "mlflow": metadata.version("mlflow"),
            "folder": str(folder),
            "mtime_ns": folder.stat().st_mtime_ns,
            "scripts": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        }
    except (ImportError, ValueError, IndexError, OSError, metadata.PackageNotFoundError):
        return None


@cache
def schema_head() -> str | None:
    """The schema revision a complete store of the installed MLflow has, or None: from
    :data:`SCHEMA_HEAD_FILE` when its key is :func:`schema_head_key`, else computed (and
    the file rewritten)."""
    key, home = schema_head_key(), cache_home()
    path = None if key is None or home is None else home / SCHEMA_HEAD_FILE
    if path is not None:
        saved = read_json(path)
        if isinstance(saved, dict) and saved.get("key") == key:
            head = saved.get("head")
            if isinstance(head, str) and head:
                return head
    head = compute_schema_head()
    if head is not None and path is not None:
        write_json(path, {"key": key, "head": head})
    return head


@dataclass
class StoreState:
    """What a SQLite file holds: ``exists``, ``complete``, ``runs`` (count), ``age`` (seconds
    since it or its journal was last written) and ``problem`` (why it is not complete)."""

    exists: bool
    complete: bool = False
    runs: int | None = 0  # None: could not be counted (then it is never moved aside)
    age: float = 0.0
    problem: str = ""


def _age(path: Path) -> float:
    times = []
    for p in (path, Path(f"{path}-journal"), Path(f"{path}-wal")):
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            pass
    return time.time() - max(times) if times else 0.0


def inspect_store(path: Path) -> StoreState:
    """Read the SQLite file at ``path`` (SQLite itself may roll back a transaction a killed
    writer left). Raises TrackingError when the file is not a SQLite database at all (it is
    never moved or changed then)."""
    if not path.exists():
        return StoreState(exists=False)
    age = _age(path)
    if path.stat().st_size == 0:
        return StoreState(exists=True, age=age, problem="the file is empty")
    try:  # read-write, so that SQLite rolls back a hot journal left by a killed writer
        con = sqlite3.connect(path, timeout=10)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
            version = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                version = row[0] if row else None
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e) or "malformed" in str(e):
            raise TrackingError(
                f"logger.tracking_uri: {path} is not a SQLite database ({e}): point "
                "logger.tracking_uri / MLFLOW_TRACKING_URI at a new file"
            ) from None
        return StoreState(exists=True, runs=None, age=0.0, problem=f"unreadable ({e})")
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    # The head (~20-130 ms to read MLflow's migration scripts) matters only for a store
    # written just now, which may be in the middle of its creation by another process; an
    # older one at another version is MLflow's to report ("out-of-date database schema").
    head = schema_head() if age < QUIET_SECONDS else None
    if leftovers:
        problem = f"a schema migration stopped half-way (table {leftovers[0]} left behind)"
    elif version is None:
        problem = "its tables were never completed (no schema version)"
    elif head is not None and version != head:
        problem = f"schema version {version}, not {head} (MLflow's current one)"
    else:
        return StoreState(exists=True, complete=True, runs=runs, age=age)
    return StoreState(exists=True, runs=runs, age=age, problem=problem)


def _remove(tmp: Path) -> None:
    for p in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)


def _create(path: Path) -> bool:
    """Build a store in a temporary file and link it to ``path``; False if ``path`` appeared
    meanwhile. Raises TrackingError (one line) when it cannot be built (full disk ...)."""
    from mlflow.tracking import MlflowClient

    for old in path.parent.glob(f".{path.name}.mlpx-*.tmp*"):  # left by killed processes
        pid = old.name[len(path.name) + 7 :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and Path("/proc/self").exists():
            old.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.mlpx-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").get_experiment_by_name("Default")
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as e:  # no hard links on this file system: a rename, if still free
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            from mlpx.tracking.store import store_error

            raise store_error(f"sqlite:///{path}", "create the store", e) from e
        if path.exists():
            return False
        os.replace(tmp, path)
    except Exception as e:
        from mlpx.tracking.store import store_error

        raise store_error(f"sqlite:///{path}", "create the store", e) from e
    finally:
        _remove(tmp)
    _logger.info("created the SQLite tracking store %s", path)
    return True


#: MLflow's loggers that print a full traceback for each failed write of a SQL store.
_NOISY_LOGGERS = ("mlflow.store.db.utils", "mlflow.utils.async_logging.async_logging_queue")


class _PermanentErrorFilter(logging.Filter):
    """Drops MLflow's log records of a full disk or an unwritable store: mlpx reports those
    itself, in one line (each record carried a traceback: pages of them before)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from mlpx.tracking.store import is_permanent

        exc = record.exc_info[1] if record.exc_info else None
        return not (is_permanent(RuntimeError(record.getMessage())) or (exc and is_permanent(exc)))


_FILTER = _PermanentErrorFilter()


def quiet_permanent_errors() -> None:
    """Install the filter on MLflow's SQL store loggers (once)."""
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def ensure_sqlite_store(path: str | os.PathLike, *, timeout: float = 120.0) -> None:
    """Make sure a complete MLflow store is at ``path`` (see the module's doc): create it
    atomically, wait for another process creating it, or rebuild a half-made one with no runs.

    Raises TrackingError (one line) for a damaged store that holds runs, a file that is not a
    SQLite database, or one still incomplete after ``timeout`` seconds.
    """
    quiet_permanent_errors()
    path = Path(path).resolve()
    if str(path) in _checked:
        return
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        state = inspect_store(path)
        if not state.exists:
            if _create(path):
                break
            continue
        if state.complete:
            break
        if state.age < QUIET_SECONDS and time.monotonic() < deadline:
            if not waited:
                _logger.warning("waiting for %s: another process is creating it", path)
                waited = True
            time.sleep(0.25)
            continue
        if state.runs is None:
            raise TrackingError(
                f"the SQLite store {path} stayed {state.problem} for {timeout:.0f} s: stop the "
                "process that holds it, or set logger.tracking_uri to another file"
            )
        if state.runs:
            raise TrackingError(
                f"the SQLite store {path} is damaged: {state.problem}; it holds {state.runs} "
                f"runs, so mlpx leaves it as it is: back it up, then `mlflow db upgrade "
                f"sqlite:///{path}`, or set logger.tracking_uri to another file"
            )
        aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(path, aside)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            raise
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        _logger.warning(
            "the SQLite store %s was left half-made (%s) and holds no runs: moved it to %s "
            "and created it afresh",
            path,
            state.problem,
            aside.name,
        )
    _checked.add(str(path))

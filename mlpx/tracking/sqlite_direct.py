"""Metric values written straight into an MLflow SQLite store's tables (opt-in).

``logger.direct_sqlite=true`` / ``MlflowTracker(..., direct_sqlite=True)``. This is the one
place where mlpx relies on MLflow's internals: the layout of its ``metrics``,
``latest_metrics`` and ``runs`` tables (``mlflow.store.tracking.dbmodels.models``), which is
not a public API. It is opt-in, used only for SQLite stores whose tables have exactly the
expected columns (checked on the database itself when a run starts; :meth:`create` returns
None otherwise), and any failure other than a locked database makes the tracker go back to
MLflow's ``log_batch`` for good. ``tests/test_tracking_sqlite_direct.py`` fails when MLflow's
table definitions change, and holds the two paths to the same stored history and latest values
through MLflow's client.

Why keep it: MLflow's ``log_batch`` builds an ORM object per value, ~0.08 ms of CPU a value on
SQLite; this writes the same rows with the DB-API's ``executemany``, in one transaction, with
``log_batch``'s semantics: NaN stored as 0 with ``is_nan``, +-inf as +-1.797e308, a value
identical to one already logged (key, timestamp, step, value) dropped, ``latest_metrics``
moved to the value with the largest ``(step, timestamp, value)``, and nothing written to a run
that is not active. Measured with ``benchmarks/tracking_cost.py --repeats 11`` (table in
:mod:`mlpx.tracking.mlflow`'s docstring): 0.007 ms of CPU a value against 0.110 through
MLflow's ``log_batch``; a digits fit logging every step (4102 values) 0.82 s against 1.60 s
(0.66 s without tracking). At the default cadence (every 50 steps: ~200 values a run) the
difference is lost in the noise, hence opt-in. The writes happen on the calling thread
(``log_metrics``, when a batch is due): ~7 ms per 1000 values.

Uses the standard library's ``sqlite3`` only (no MLflow, no SQLAlchemy) with MLflow's own
busy timeout (20 s) and ``BEGIN IMMEDIATE`` transactions, so it waits for other writers of
the same database (parallel sweep jobs) instead of failing.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from mlpx.tracking.store import sqlite_path

__all__ = ["COLUMNS", "LATEST_COLUMNS", "RUN_COLUMNS", "SqliteMetricWriter"]

#: The columns of MLflow's ``metrics`` table, in the order of the rows written here; its
#: primary key is all of them but ``run_uuid``'s position (``INSERT OR IGNORE`` relies on it
#: to drop values logged twice).
COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
#: ``latest_metrics`` has the same columns; its primary key is ``(key, run_uuid)``.
LATEST_COLUMNS = COLUMNS
#: The columns of ``runs`` read here.
RUN_COLUMNS = ("run_uuid", "lifecycle_stage")
#: MLflow's SQLite busy timeout (``PRAGMA busy_timeout = 20000`` in mlflow/store/db/utils.py).
BUSY_TIMEOUT_S = 20.0

_MAX_FLOAT = 1.7976931348623157e308


def table_layout(conn: sqlite3.Connection, table: str) -> tuple[set[str], set[str]]:
    """``(columns, primary-key columns)`` of ``table`` in the database of ``conn``."""
    rows = conn.execute(f"PRAGMA table_info({table})").fetchall()  # (cid, name, type, ...)
    return {r[1] for r in rows}, {r[1] for r in rows if r[5]}


def layout_matches(conn: sqlite3.Connection) -> bool:
    """Whether the database has the tables this writer writes, with the expected columns."""
    metrics, metrics_pk = table_layout(conn, "metrics")
    latest, latest_pk = table_layout(conn, "latest_metrics")
    runs, _ = table_layout(conn, "runs")
    return (
        metrics == set(COLUMNS)
        and metrics_pk == set(COLUMNS)
        and latest == set(LATEST_COLUMNS)
        and latest_pk == {"key", "run_uuid"}
        and set(RUN_COLUMNS) <= runs
    )


class SqliteMetricWriter:
    """Metric values of one run written straight into an MLflow SQLite store.

    Create with :meth:`create`; :meth:`write` takes ``(key, value, timestamp_ms, step)`` rows.
    """

    _insert_metrics = (
        f"INSERT OR IGNORE INTO metrics ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    _insert_latest = (
        f"INSERT INTO latest_metrics ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    _move_latest = (
        "UPDATE latest_metrics SET value = ?, timestamp = ?, step = ?, is_nan = ? "
        "WHERE run_uuid = ? AND key = ?"
    )
    _stage = "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?"

    def __init__(self, conn: sqlite3.Connection, path: str, run_id: str) -> None:
        self.conn, self.path, self.run_id = conn, path, run_id
        self._lock = threading.Lock()

    @classmethod
    def create(cls, uri: str, run_id: str) -> SqliteMetricWriter | None:
        """The writer for ``run_id`` in the SQLite store at ``uri``; None when ``uri`` is not
        a SQLite file or its tables are not laid out as expected (then ``log_batch`` is used)."""
        path = sqlite_path(uri)
        if path is None:
            return None
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None
        try:
            if layout_matches(conn):
                return cls(conn, path, run_id)
        except sqlite3.Error:
            pass
        conn.close()
        return None

    def write(self, chunk: Sequence[tuple[str, float, int, int]]) -> bool:
        """Write ``(key, value, timestamp_ms, step)`` rows in one transaction; False (nothing
        written) when the run is not active, so that ``log_batch`` raises MLflow's own error."""
        run_id = self.run_id
        rows: list[tuple[Any, ...]] = []  # in the order of COLUMNS
        seen: set[tuple[Any, ...]] = set()
        best: dict[str, tuple[Any, ...]] = {}  # key -> its row of largest (step, ts, value)
        for key, value, timestamp, step in chunk:
            is_nan = value != value
            if is_nan:
                value = 0.0
            elif math.isinf(value):
                value = _MAX_FLOAT if value > 0 else -_MAX_FLOAT
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
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")  # the write lock now: no upgrade deadlock later
            try:
                stage = conn.execute(self._stage, (run_id,)).fetchone()
                if stage is None or stage[0] != "active":
                    conn.execute("ROLLBACK")
                    return False
                conn.executemany(self._insert_metrics, rows)
                marks = ", ".join("?" * len(best))
                stored = {
                    key: (step, timestamp, value)
                    for key, step, timestamp, value in conn.execute(
                        "SELECT key, step, timestamp, value FROM latest_metrics "
                        f"WHERE run_uuid = ? AND key IN ({marks})",
                        (run_id, *best),
                    )
                }
                new = [row for key, row in best.items() if key not in stored]
                if new:
                    conn.executemany(self._insert_latest, new)
                moved = [
                    (row[1], row[2], row[3], row[4], run_id, key)
                    for key, row in best.items()
                    if key in stored and (row[3], row[2], row[1]) > stored[key]
                ]
                if moved:
                    conn.executemany(self._move_latest, moved)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self.conn.close()

    def __repr__(self) -> str:
        return f"SqliteMetricWriter(path={self.path!r}, run_id={self.run_id!r})"

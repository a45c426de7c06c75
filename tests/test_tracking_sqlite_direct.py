"""The opt-in direct SQLite writer (mlpx.tracking.sqlite_direct) against MLflow's own store.

Two kinds of test: the layout this writer assumes is MLflow's (fails when an MLflow upgrade
changes its ``metrics``/``latest_metrics``/``runs`` tables: then fix the writer or drop it),
and the same values sent through the writer and through ``log_batch`` end up as the same stored
history and latest values, read back through MLflow's client.
"""

from __future__ import annotations

import random
import sqlite3

import pytest

from mlpx.tracking import MlflowTracker, prepare_store
from mlpx.tracking import sqlite_direct as direct


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    prepare_store(uri, "tests")
    return uri


@pytest.fixture(scope="module")
def client(store: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store)


# ------------------------------------------------------------------------------------------
# MLflow's table layout
# ------------------------------------------------------------------------------------------


def _model_layout(model) -> tuple[set[str], set[str]]:
    table = model.__table__
    return set(table.c.keys()), {c.name for c in table.primary_key.columns}


def test_mlflows_table_definitions_are_the_layout_the_writer_assumes():
    """Fails when MLflow changes its metric tables: the writer must then change too."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun

    assert SqlMetric.__tablename__ == "metrics"
    assert SqlLatestMetric.__tablename__ == "latest_metrics"
    assert SqlRun.__tablename__ == "runs"
    assert _model_layout(SqlMetric) == (set(direct.COLUMNS), set(direct.COLUMNS))
    assert _model_layout(SqlLatestMetric) == (set(direct.LATEST_COLUMNS), {"key", "run_uuid"})
    assert set(direct.RUN_COLUMNS) <= _model_layout(SqlRun)[0]


def test_a_store_made_by_mlflow_has_that_layout(store):
    conn = sqlite3.connect(store[len("sqlite:///") :])
    try:
        assert direct.layout_matches(conn)
    finally:
        conn.close()


def test_another_layout_means_log_batch(tmp_path, client):
    """A store whose metrics table has another column: no writer, MLflow's log_batch."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_store(uri, "tests")
    conn = sqlite3.connect(tmp_path / "mlflow.db")
    conn.execute("ALTER TABLE metrics ADD COLUMN dataset_uuid VARCHAR(36)")
    conn.commit()
    conn.close()
    assert direct.SqliteMetricWriter.create(uri, "no-run") is None
    tracker = MlflowTracker(uri, "tests", "other-layout", direct_sqlite=True)
    assert tracker.direct_sqlite is False
    tracker.log_metrics({"a": 1.0}, 0)
    tracker.finish()


def test_only_sqlite_files_get_a_writer():
    assert direct.SqliteMetricWriter.create("http://127.0.0.1:5000", "x") is None
    assert direct.SqliteMetricWriter.create("sqlite:///:memory:", "x") is None


# ------------------------------------------------------------------------------------------
# The same rows as log_batch
# ------------------------------------------------------------------------------------------


def _stored(client, run_id: str, keys) -> tuple[dict, dict]:
    """Every stored (step, timestamp, value) of each key, and the run's latest values, with
    NaN spelled out (nan != nan)."""

    def v(x: float):
        return "nan" if x != x else repr(x)  # strings: sortable, and -0.0 != 0.0

    history = {
        key: sorted(
            (m.step, m.timestamp, v(m.value)) for m in client.get_metric_history(run_id, key)
        )
        for key in keys
    }
    latest = {k: v(x) for k, x in client.get_run(run_id).data.metrics.items()}
    return history, latest


def _send_rows(tracker: MlflowTracker, chunks) -> None:
    for rows in chunks:  # exact timestamps: straight into the buffer, then one send each
        with tracker._state.lock:
            tracker._state.buffer.extend(rows)
        tracker.flush()


def test_direct_sqlite_writes_exactly_what_log_batch_writes(store, client):
    nan, inf = float("nan"), float("inf")
    chunks = [
        [
            ("a", 1.0, 1000, 0),
            ("a", 1.0, 1000, 0),  # identical: stored once
            ("a", 2.0, 1000, 1),
            ("a", 0.5, 999, 1),  # same step, older: not the latest
            ("b", nan, 1000, 0),
            ("b", 1.0, 1000, 0),
            ("b", nan, 1000, 0),
            ("c", inf, 5, 3),
            ("c", -inf, 5, 3),  # same step and time, smaller: not the latest
            ("d", 3.0, 10, 5),
            ("d", 4.0, 10, 2),  # an earlier step later: not the latest
            ("grad_norm/layer_1", 0.25, 7, 7),
        ],
        [
            ("a", 1.0, 1000, 0),  # identical to a value of the first send: dropped
            ("a", 9.0, 500, 1),
            ("d", 1.0, 11, 5),  # same step, newer: the latest
            ("c", nan, 6, 3),  # a newer NaN becomes the latest
            ("e", -0.0, 1, 1),
        ],
    ]
    rng = random.Random(0)
    values = [0.0, 1.0, -1.0, 2.5, nan, inf, -inf]
    for _ in range(3):
        chunks.append(
            [
                (rng.choice("xyz"), rng.choice(values), rng.randrange(4), rng.randrange(6))
                for _ in range(200)
            ]
        )
    keys = sorted({row[0] for chunk in chunks for row in chunk})
    results = []
    for use_direct in (True, False):
        tracker = MlflowTracker(
            store, "tests", f"direct-{use_direct}", flush_seconds=3600, direct_sqlite=use_direct
        )
        assert tracker.direct_sqlite is use_direct
        _send_rows(tracker, chunks)
        assert tracker.direct_sqlite is use_direct  # never fell back
        tracker.finish()
        results.append(_stored(client, tracker.run_id, keys))
    assert results[0] == results[1]
    history, latest = results[0]
    assert len(history["a"]) == 4 and latest["d"] == "1.0" and latest["c"] == "nan"


class _Spy:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self.fn(*args, **kwargs)


def test_direct_sqlite_skips_log_batch(store, client, monkeypatch):
    tracker = MlflowTracker(
        store, "tests", "direct-spy", flush_every=100, flush_seconds=3600, direct_sqlite=True
    )
    batch = _Spy(tracker._client.log_batch)
    monkeypatch.setattr(tracker._client, "log_batch", batch)
    for step in range(500):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "grad_norm/global": 2.0}, step)
    tracker.finish()
    assert not [kw for kw in batch.calls if kw.get("metrics")]
    assert len(client.get_metric_history(tracker.run_id, "train/loss")) == 500
    assert client.get_run(tracker.run_id).data.metrics["train/loss"] == 1.0 / 500
    assert "sent=1000 values in 10 batches" in repr(tracker)


def test_direct_sqlite_failure_falls_back_to_log_batch(store, client, monkeypatch, caplog):
    tracker = MlflowTracker(
        store, "tests", "direct-broken", flush_every=10**6, flush_seconds=3600, direct_sqlite=True
    )
    writer = tracker._state.writer
    assert writer is not None

    def broken(chunk):
        raise sqlite3.OperationalError("no such column: is_nan")

    monkeypatch.setattr(writer, "write", broken)
    with caplog.at_level("WARNING", logger="mlpx.tracking"):
        for step in range(50):
            tracker.log_metrics({"a": float(step)}, step)
        tracker.flush()
    assert "sending them with MLflow's log_batch from now on" in caplog.text
    assert tracker.direct_sqlite is False
    tracker.finish()
    assert sorted(m.step for m in client.get_metric_history(tracker.run_id, "a")) == list(range(50))


def test_direct_sqlite_leaves_a_deleted_run_to_mlflow(store, client):
    tracker = MlflowTracker(
        store, "tests", "direct-deleted", flush_every=10**6, flush_seconds=3600, direct_sqlite=True
    )
    tracker.log_metrics({"a": 1.0}, 0)
    client.delete_run(tracker.run_id)
    with pytest.raises(Exception, match="must be in the 'active' state"):
        tracker.flush()  # MLflow's own error, from log_batch
    assert tracker.buffered == 1  # kept
    client.restore_run(tracker.run_id)
    tracker.finish()
    assert [m.value for m in client.get_metric_history(tracker.run_id, "a")] == [1.0]

"""Tracking: MlflowTracker against real temporary SQLite stores, the in-memory trackers, URI
checks, flatten, and the dashboard figures.

Creating a SQLite store runs MLflow's migrations (~2 s), so most tests share one store per
module and use their own experiment or run; the concurrency test makes a fresh one.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mlpx import tracking
from mlpx.tracking import (
    MemoryTracker,
    MlflowTracker,
    NullTracker,
    Tracker,
    TrackingError,
    check_tracking_uri,
    create_parent_run,
    end_run,
    flatten,
    prepare_store,
    resolve_tracking_uri,
    sender,
)
from mlpx.tracking import mlflow as mlpx_mlflow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module, created (tables + experiment) once."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    prepare_store(uri, "tests")
    return uri


@pytest.fixture(scope="module")
def client(store: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store)


# ------------------------------------------------------------------------------------------
# MlflowTracker end to end
# ------------------------------------------------------------------------------------------


def test_end_to_end_params_tags_metrics_artifacts(store, client, tmp_path):
    from mlpx.analysis.plots import learning_curves

    tracker = MlflowTracker(store, "tests", "adam-lr0.01-w128x3-relu", tags={"purpose": "e2e"})
    assert tracker.run_id and tracker.status == "RUNNING"
    assert isinstance(tracker, Tracker)
    cfg = {
        "model": {"widths": [128, 64], "activation": "relu"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "notes": "x" * 7000,  # over MLflow's 6000-character param limit
        "weird key[0]": 1,  # brackets are not allowed in MLflow names
    }
    tracker.log_params(cfg)
    tracker.set_tags({"dataset": "digits"})
    for step in range(1000):  # 3000 values
        tracker.log_metrics(
            {"train/loss": 1.0 / (step + 1), "val/loss": 2.0 / (step + 1), "lr": 0.01}, step
        )
    note = tmp_path / "hello.txt"
    note.write_text("hello")
    tracker.log_artifact(note, "notes")
    tracker.log_text("seed: 0\n", "config.yaml")
    history = {"train/loss": [(0, 1.0), (1, 0.5)], "val/loss": [(0, 1.1), (1, 0.7)]}
    tracker.log_figure(learning_curves(history), "figures/learning_curves.png")
    tracker.finish()
    tracker.finish()  # idempotent

    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "adam-lr0.01-w128x3-relu"
    assert run.data.tags["mlflow.runName"] == "adam-lr0.01-w128x3-relu"
    assert run.data.tags["purpose"] == "e2e"
    assert run.data.tags["dataset"] == "digits"
    params = run.data.params
    assert params["model.widths"] == "[128, 64]"
    assert params["model.activation"] == "relu"
    assert params["optimizer.lr"] == "0.01"
    assert len(params["notes"]) == tracking.MAX_PARAM_VAL_LENGTH == 6000
    assert params["weird key_0_"] == "1"

    loss = client.get_metric_history(tracker.run_id, "train/loss")
    assert sorted(m.step for m in loss) == list(range(1000))
    assert all(m.value == pytest.approx(1.0 / (m.step + 1)) for m in loss)
    assert len(client.get_metric_history(tracker.run_id, "val/loss")) == 1000
    assert len(client.get_metric_history(tracker.run_id, "lr")) == 1000

    names = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert {"notes", "config.yaml", "figures"} <= names
    assert [a.path for a in client.list_artifacts(tracker.run_id, "notes")] == ["notes/hello.txt"]
    png = Path(client.download_artifacts(tracker.run_id, "figures/learning_curves.png", tmp_path))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # artifacts live beside the database, not in the current directory
    db_folder = Path(store[len("sqlite:///") :]).parent
    assert run.info.artifact_uri.startswith((db_folder / "mlruns").as_uri())
    assert "RUNNING" not in repr(tracker) and tracker.run_id in repr(tracker)


def test_finish_failed_records_error(store, client, tmp_path):
    tracker = MlflowTracker(store, "tests", "fails")
    tracker.log_metrics({"train/loss": 1.0}, 0)
    tracker.finish("FAILED", error="Traceback ...\nValueError: loss is nan at step 3")
    tracker.finish("FINISHED")  # a second call changes nothing
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].endswith("loss is nan at step 3")
    assert run.data.metrics["train/loss"] == 1.0  # buffered value flushed on finish
    text = Path(client.download_artifacts(tracker.run_id, "error.txt", tmp_path)).read_text()
    assert "loss is nan" in text
    with pytest.raises(TrackingError, match="finished"):
        tracker.log_metrics({"train/loss": 2.0}, 1)
    with pytest.raises(ValueError, match="FINISHED, FAILED, KILLED"):
        tracker.finish("DONE")


def test_context_manager_marks_exception_failed(store, client):
    with pytest.raises(RuntimeError), MlflowTracker(store, "tests", "ctx") as tracker:
        raise RuntimeError("diverged")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert "RuntimeError: diverged" in run.data.tags["error"]


def test_unfinished_tracker_is_ended_when_collected(store, client):
    tracker = MlflowTracker(store, "tests", "abandoned")
    tracker.log_metrics({"train/loss": 0.5}, 0)
    run_id = tracker.run_id
    del tracker
    gc.collect()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert "without finish()" in run.data.tags["error"]
    assert run.data.metrics["train/loss"] == 0.5


def test_repeated_param_with_new_value_is_skipped_not_fatal(store, client, caplog):
    tracker = MlflowTracker(store, "tests", "params-twice")
    tracker.log_params({"lr": 0.1})
    tracker.log_params({"lr": 0.1})  # same value: fine
    with caplog.at_level("WARNING", logger="mlpx.tracking"):
        tracker.log_params({"lr": 0.2, "epochs": 3})
    tracker.finish()
    assert "immutable" in caplog.text
    assert client.get_run(tracker.run_id).data.params == {"lr": "0.1", "epochs": "3"}


# ------------------------------------------------------------------------------------------
# Batching, and the sender thread
# ------------------------------------------------------------------------------------------


class _Spy:
    """Wraps a client method: records each call's kwargs and thread; can fail some calls made
    on the calling thread (``fail_sync``) or on the tracker's sender thread (``fail_async``),
    as a store that cannot write the batch does."""

    def __init__(self, fn, fail_sync=(), fail_async=()):
        self.fn, self.fail_sync, self.fail_async = fn, list(fail_sync), list(fail_async)
        self.calls: list[dict] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        self.threads.append(threading.current_thread())
        if kwargs.get("metrics"):
            if _on_sender() and self.fail_async:
                raise self.fail_async.pop(0)
            if not _on_sender() and self.fail_sync:
                raise self.fail_sync.pop(0)
        return self.fn(*args, **kwargs)

    def metric_calls(self, synchronous: bool) -> list[int]:
        """Sizes of the metric batches sent on the calling thread (``synchronous``) or on the
        sender thread, in order."""
        return [
            len(kw["metrics"])
            for kw, thread in zip(self.calls, self.threads)
            if kw.get("metrics") and _is_sender(thread) is not synchronous
        ]

    def sender_batches(self) -> list[list]:
        """The metric batches written on the sender thread, in order."""
        return [
            kw["metrics"]
            for kw, thread in zip(self.calls, self.threads)
            if kw.get("metrics") and _is_sender(thread)
        ]


def _is_sender(thread: threading.Thread) -> bool:
    return thread.name.startswith(sender.THREAD_NAME)


def _on_sender() -> bool:
    return _is_sender(threading.current_thread())


def _drain() -> None:
    """Wait until the sender thread has written every batch handed to it so far (it writes
    them in order, one at a time)."""
    sender.submit(lambda: None).result(timeout=60)


def test_metrics_go_through_async_log_batch_not_log_metric(store, client, monkeypatch):
    tracker = MlflowTracker(store, "tests", "batched", flush_every=1000, flush_seconds=3600)
    batch = _Spy(tracker._client.log_batch)
    single = _Spy(tracker._client.log_metric)
    monkeypatch.setattr(tracker._client, "log_batch", batch)
    monkeypatch.setattr(tracker._client, "log_metric", single)

    for step in range(1000):  # 3000 values
        tracker.log_metrics({"a": float(step), "b": 2.0 * step, "c": -1.0 * step}, step)
    _drain()
    assert batch.metric_calls(synchronous=False) == [1000, 1000, 1000]  # while training
    tracker.finish()

    assert single.calls == []
    assert batch.metric_calls(synchronous=True) == []  # nothing left for finish to send
    # never MLflow's asynchronous queue, whose shutdown in set_terminated waits up to 1 s
    assert all(kw.get("synchronous") is not False for kw in batch.calls)
    assert len(client.get_metric_history(tracker.run_id, "c")) == 1000
    assert "sent=3000 values in 3 batches" in repr(tracker)


def test_metric_batches_are_written_when_sent_whatever_mlflow_async_default(
    store, client, monkeypatch
):
    """MLFLOW_ENABLE_ASYNC_LOGGING=true makes log_batch asynchronous by default: the tracker
    asks for synchronous writes, on the sender and on the finishing thread alike."""
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    tracker = MlflowTracker(store, "tests", "env-async", flush_every=100, flush_seconds=3600)
    batch = _Spy(tracker._client.log_batch)
    monkeypatch.setattr(tracker._client, "log_batch", batch)
    for step in range(150):  # one batch of 100 on the sender, 50 left for finish
        tracker.log_metrics({"a": float(step)}, step)
    tracker.finish()
    assert batch.metric_calls(synchronous=False) == [100]
    assert batch.metric_calls(synchronous=True) == [50]
    assert all(kw.get("synchronous") is True for kw in batch.calls if kw.get("metrics"))
    assert len(client.get_metric_history(tracker.run_id, "a")) == 150


def test_a_tracker_collected_on_the_sender_thread_ends_its_run(store, client):
    """A tracker's finalizer may run on any thread, the sender's included (a collection
    there): ending the run waits for batches queued behind the very call that collected it,
    so it ends on a thread of its own, every value stored."""
    tracker = MlflowTracker(store, "tests", "gc-on-sender", flush_every=10, flush_seconds=3600)
    gate = threading.Event()
    state = tracker._state
    ended = sender.submit(lambda: (gate.wait(30), state.abandon("KILLED", "gc")))
    for step in range(30):  # 3 batches, queued behind the finalizer's call
        tracker.log_metrics({"a": float(step)}, step)
    gate.set()
    ended.result(timeout=30)
    deadline = time.monotonic() + 30
    while client.get_run(tracker.run_id).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the run was never ended"
        time.sleep(0.05)
    assert client.get_run(tracker.run_id).info.status == "KILLED"
    assert len(client.get_metric_history(tracker.run_id, "a")) == 30


def test_params_are_sent_in_chunks_of_100(store, client, monkeypatch):
    tracker = MlflowTracker(store, "tests", "many-params")
    batch = _Spy(tracker._client.log_batch)
    monkeypatch.setattr(tracker._client, "log_batch", batch)
    tracker.log_params({f"p{i}": i for i in range(250)})
    tracker.finish()
    sizes = [len(kw["params"]) for kw in batch.calls if kw.get("params")]
    assert sizes == [100, 100, 50]
    assert len(client.get_run(tracker.run_id).data.params) == 250


def test_flush_seconds_sends_without_waiting_for_a_full_buffer(store, monkeypatch):
    tracker = MlflowTracker(store, "tests", "timed", flush_every=1000, flush_seconds=0.0)
    batch = _Spy(tracker._client.log_batch)
    monkeypatch.setattr(tracker._client, "log_batch", batch)
    for step in range(3):
        tracker.log_metrics({"a": 1.0}, step)
        _drain()
        assert batch.metric_calls(synchronous=False) == [1] * (step + 1)  # sent, not at finish
    tracker.finish()
    assert batch.metric_calls(synchronous=True) == []


def test_log_metrics_does_not_wait_for_a_locked_store(store, client):
    """While another connection holds SQLite's write lock, logging 5000 values returns (a
    synchronous write would wait for MLflow's 20 s busy timeout, then fail); finish() stores
    them all once the lock is gone."""
    import sqlite3

    tracker = MlflowTracker(store, "tests", "locked", flush_every=1000, flush_seconds=3600)
    blocker = sqlite3.connect(store[len("sqlite:///") :], isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for step in range(1000):  # 5 batches handed to MLflow, none of them writable now
            tracker.log_metrics({f"m{i}": float(step + i) for i in range(5)}, step)
        assert tracker.buffered == 5000
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    tracker.finish()
    assert tracker.buffered == 0
    for i in range(5):
        assert len(client.get_metric_history(tracker.run_id, f"m{i}")) == 1000


def test_finish_stores_every_value_sent_in_the_background(store, client):
    tracker = MlflowTracker(store, "tests", "async-5000", flush_every=250, flush_seconds=3600)
    for step in range(1000):
        tracker.log_metrics({f"k{i}": step * 10.0 + i for i in range(5)}, step)
    tracker.finish()
    assert tracker.buffered == 0 and tracker.status == "FINISHED"
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    for i in range(5):
        history = client.get_metric_history(tracker.run_id, f"k{i}")
        assert sorted((m.step, m.value) for m in history) == [
            (step, step * 10.0 + i) for step in range(1000)
        ]
        assert run.data.metrics[f"k{i}"] == 999 * 10.0 + i  # the latest value is the last one
    assert "sent=5000 values" in repr(tracker)


def test_failed_async_batch_is_sent_again_during_training(store, client, monkeypatch, caplog):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    tracker = MlflowTracker(store, "tests", "async-retry", flush_every=100, flush_seconds=3600)
    locked = MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
    spy = _Spy(tracker._client.log_batch, fail_async=[locked])
    monkeypatch.setattr(tracker._client, "log_batch", spy)
    n_sends = mlpx_mlflow.MAX_PENDING_BATCHES + 3  # the first batch is waited for, then resent
    with caplog.at_level("WARNING", logger="mlpx.tracking"):
        for step in range(100 * n_sends):
            tracker.log_metrics({"a": float(step)}, step)
    assert "database is locked" in caplog.text and "kept for the next send" in caplog.text
    _drain()
    sent = [{m.step for m in batch} for batch in spy.sender_batches()]
    assert set(range(100)) <= sent[0]  # the batch that failed ...
    assert any(set(range(100)) <= steps for steps in sent[1:])  # ... went again, in training
    tracker.finish()
    steps = [m.step for m in client.get_metric_history(tracker.run_id, "a")]
    assert sorted(steps) == list(range(100 * n_sends))  # each value exactly once


def test_failed_async_batch_is_kept_for_finish(store, client, monkeypatch, caplog):
    tracker = MlflowTracker(store, "tests", "async-fail", flush_every=100, flush_seconds=3600)
    spy = _Spy(tracker._client.log_batch, fail_async=[ValueError("store says no")])
    monkeypatch.setattr(tracker._client, "log_batch", spy)
    for step in range(60):  # 120 values: one async batch of 100, which fails
        tracker.log_metrics({"a": float(step), "b": 1.0}, step)
    assert tracker.buffered == 120
    with caplog.at_level("WARNING", logger="mlpx.tracking"):
        tracker.finish()
    assert "store says no" in caplog.text and "kept for the next send" in caplog.text
    assert spy.metric_calls(synchronous=True) == [120]  # all of it, on the finishing thread
    assert spy.threads[-1] is threading.current_thread()
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    history = client.get_metric_history(tracker.run_id, "a")
    assert sorted(m.step for m in history) == list(range(60))


def test_a_refused_async_send_does_not_stop_training(store, client, monkeypatch, caplog):
    tracker = MlflowTracker(store, "tests", "async-refused", flush_every=100, flush_seconds=3600)

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(sender, "submit", refuse)
    with caplog.at_level("WARNING", logger="mlpx.tracking"):
        for step in range(150):
            tracker.log_metrics({"a": float(step)}, step)
    assert "cannot schedule" in caplog.text and tracker.buffered == 150
    tracker.finish()
    assert len(client.get_metric_history(tracker.run_id, "a")) == 150


def test_flush_raises_and_keeps_values_when_the_store_refuses(store, client, monkeypatch):
    tracker = MlflowTracker(store, "tests", "flush-fail", flush_every=1000, flush_seconds=3600)
    spy = _Spy(tracker._client.log_batch, fail_sync=[ValueError("refused")])
    monkeypatch.setattr(tracker._client, "log_batch", spy)
    for step in range(10):
        tracker.log_metrics({"a": float(step)}, step)
    with pytest.raises(ValueError, match="refused"):
        tracker.flush()
    assert tracker.buffered == 10
    tracker.flush()
    assert tracker.buffered == 0
    assert len(client.get_metric_history(tracker.run_id, "a")) == 10
    tracker.finish()


def test_the_default_is_mlflows_public_api(store):
    tracker = MlflowTracker(store, "tests", "default-path")
    assert tracker.direct_sqlite is False
    tracker.finish()


def test_collected_tracker_sends_its_values_and_ends_killed(store, client):
    tracker = MlflowTracker(store, "tests", "async-abandoned", flush_every=10, flush_seconds=3600)
    for step in range(105):
        tracker.log_metrics({"a": float(step)}, step)
    run_id = tracker.run_id
    del tracker
    gc.collect()
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run_id, "a")) == 105


_UNFINISHED_JOB = textwrap.dedent(
    """
    import sys
    from mlpx.tracking import MlflowTracker
    tracker = MlflowTracker(sys.argv[1], "exit", "unfinished", flush_every=100)
    for step in range(2500):
        tracker.log_metrics({"a": float(step), "b": 2.0}, step)
    print(tracker.run_id)
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")
    """
)


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_exit_hook_flushes_the_sender_before_ending_the_run(store, client, how):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-c", _UNFINISHED_JOB, store, how],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == (0 if how == "exit" else 1), result.stderr[-2000:]
    run_id = result.stdout.strip().splitlines()[-1]
    run = client.get_run(run_id)
    assert run.info.status == ("KILLED" if how == "exit" else "FAILED")
    assert len(client.get_metric_history(run_id, "a")) == 2500
    assert len(client.get_metric_history(run_id, "b")) == 2500


def test_transient_errors_are_retried_others_are_not():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:  # what MLflow's SQL store raises for a locked database
            raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
        return "ok"

    assert tracking.with_retry(flaky, retries=5, base_delay=0.0) == "ok"
    assert len(calls) == 3

    def broken():
        calls.append(1)
        raise MlflowException("Invalid metric name", error_code=INVALID_PARAMETER_VALUE)

    calls.clear()
    with pytest.raises(MlflowException):
        tracking.with_retry(broken, retries=5, base_delay=0.0)
    assert len(calls) == 1


def _locked_database_error(tmp_path) -> Exception:
    """A real sqlite3.OperationalError of a locked database (SQLITE_BUSY)."""
    import sqlite3

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0.0)
    try:
        other.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as e:
        return e
    finally:
        other.close()
        holder.close()
    raise AssertionError("the database was not locked")


def test_errors_are_classified_by_type_not_text(tmp_path):
    import sqlalchemy.exc

    busy = _locked_database_error(tmp_path)
    assert tracking.is_transient(busy)
    wrapped = sqlalchemy.exc.OperationalError("INSERT ...", {}, busy)
    assert tracking.is_transient(wrapped)
    assert tracking.is_transient(ConnectionResetError("reset by peer"))
    # The same words in an error of no transient type: final (no retry on text alone).
    assert not tracking.is_transient(RuntimeError("(sqlite3.OperationalError) database is locked"))
    import sqlite3

    assert not tracking.is_transient(sqlite3.OperationalError("no such table: metrics"))


# ------------------------------------------------------------------------------------------
# Sweeps: parent and children, parallel jobs
# ------------------------------------------------------------------------------------------


def test_children_carry_parent_run_id(store, client):
    parent = create_parent_run(store, "sweep", "sweep-lr", {"sweep": "lr"})
    children = [
        MlflowTracker(store, "sweep", f"lr{lr}", parent_run_id=parent) for lr in (0.1, 0.01)
    ]
    for child in children:
        child.log_metrics({"val/loss": 0.3}, 0)
        child.finish()
    end_run(store, parent, "FINISHED")

    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(parent).data.tags["sweep"] == "lr"
    for child in children:
        assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent
    experiment_id = client.get_experiment_by_name("sweep").experiment_id
    nested = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert {r.info.run_id for r in nested} == {c.run_id for c in children}


_JOB = textwrap.dedent(
    """
    import sys
    from mlpx.tracking import MlflowTracker
    tracker = MlflowTracker(sys.argv[1], "parallel", sys.argv[2])
    for step in range(300):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
    tracker.finish()
    print(tracker.run_id)
    """
)


def _run_jobs(uri: str, n: int, cwd: Path) -> list[tuple[str, str]]:
    """Run ``n`` copies of _JOB at once (job0, job1, ...); all must succeed. (stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", _JOB, uri, f"job{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        for i in range(n)
    ]
    outputs = [job.communicate(timeout=60) for job in jobs]
    for job, (_, err) in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, err[-2000:]
    return outputs


def test_parallel_jobs_after_prepare_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = prepare_store(uri, "parallel")
    assert prepare_store(uri, "parallel") == experiment_id  # get, not create, the second time

    outputs = _run_jobs(uri, 2, tmp_path)
    run_ids = {out.strip().splitlines()[-1] for out, _ in outputs}

    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id])
    assert {r.info.run_id for r in runs} == run_ids
    assert {r.info.run_name for r in runs} == {"job0", "job1"}
    assert all(r.info.status == "FINISHED" for r in runs)
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "train/loss")) == 300


def test_parallel_jobs_on_a_fresh_store_without_prepare_store(tmp_path):
    """Jobs racing to create a fresh SQLite store: the folder lock serialises the migration."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _run_jobs(uri, 3, tmp_path)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("parallel").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["job0", "job1", "job2"]


# ------------------------------------------------------------------------------------------
# URIs
# ------------------------------------------------------------------------------------------


def test_unreachable_server_fails_fast_with_the_uri():
    start = time.perf_counter()
    with pytest.raises(TrackingError) as info:
        check_tracking_uri("http://127.0.0.1:9")
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "http://127.0.0.1:9" in message
    assert "cannot be reached (connection refused)" in message and "mlflow server" in message


def test_unreachable_server_fails_fast_in_the_tracker_too():
    start = time.perf_counter()
    with pytest.raises(TrackingError, match=re.escape("127.0.0.1:9")):
        MlflowTracker("http://127.0.0.1:9", "tests", "never")
    assert time.perf_counter() - start < 10


def test_sqlite_in_missing_folder_fails_clearly(tmp_path):
    uri = f"sqlite:///{tmp_path}/nope/mlflow.db"
    with pytest.raises(TrackingError, match=r"does not exist: create it \(mkdir -p"):
        check_tracking_uri(uri)
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_sqlite_in_unwritable_folder_fails_clearly(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(TrackingError, match="not writable"):
            check_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    finally:
        folder.chmod(0o700)


def test_file_store_needs_the_opt_in(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(TrackingError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        check_tracking_uri(f"file://{tmp_path}/mlruns")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert check_tracking_uri(f"file://{tmp_path}/mlruns") == f"file://{tmp_path}/mlruns"


def test_tracking_uri_resolution_order(tmp_path, monkeypatch):
    import mlflow

    if mlflow.tracking._tracking_service.utils._tracking_uri is not None:
        pytest.skip("mlflow.set_tracking_uri() was called in this process")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # MLflow 3's own default: a SQLite file in the current directory, made absolute
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    assert check_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert resolve_tracking_uri(None) == "http://example.invalid:5000"  # env beats default
    assert resolve_tracking_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"  # argument beats env
    assert resolve_tracking_uri("sqlite:///rel/m.db") == f"sqlite:///{tmp_path}/rel/m.db"


# ------------------------------------------------------------------------------------------
# flatten, in-memory trackers, cheap import
# ------------------------------------------------------------------------------------------


def test_flatten_nested_config():
    np = pytest.importorskip("numpy")
    cfg = {
        "model": {"widths": [128, 64], "activation": "relu", "init": {"name": "he"}},
        "optimizer": {"lr": np.float64(0.01), "betas": (0.9, 0.999)},
        "schedule": [{"name": "warmup", "steps": 10}, {"name": "cosine"}],
        "tags": [],
        "extra": {},
        "seed": 0,
    }
    assert flatten(cfg) == {
        "model.widths": "[128, 64]",
        "model.activation": "relu",
        "model.init.name": "he",
        "optimizer.lr": 0.01,
        "optimizer.betas": "[0.9, 0.999]",
        "schedule.0.name": "warmup",
        "schedule.0.steps": 10,
        "schedule.1.name": "cosine",
        "tags": "[]",
        "extra": "{}",
        "seed": 0,
    }
    assert flatten({"a": {"b": 1}}, prefix="cfg") == {"cfg.a.b": 1}


def test_memory_tracker_records_step_value_pairs():
    tracker = MemoryTracker()
    tracker.log_params({"model": {"widths": [4, 2]}})
    for step in range(3):
        tracker.log_metrics({"train/loss": 1.0 / (step + 1), "grad_norm/layer_1": step}, step)
    tracker.log_figure(object(), "figures/x.png")
    tracker.finish("FAILED", error="boom")
    tracker.finish()
    assert tracker.metrics["train/loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert tracker.metrics["grad_norm/layer_1"] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert tracker.params == {"model.widths": "[4, 2]"}
    assert tracker.figures == ["figures/x.png"]
    assert tracker.status == "FAILED" and tracker.tags["error"] == "boom"
    assert "FAILED" in repr(tracker)
    with pytest.raises(TypeError, match="'train/loss' must be a real number"):
        tracker.log_metrics({"train/loss": "high"}, 3)


def test_trackers_satisfy_the_protocol():
    assert isinstance(NullTracker(), Tracker)
    assert isinstance(MemoryTracker(), Tracker)
    assert NullTracker().run_id is None
    NullTracker().finish("KILLED", error="x")


def test_import_is_cheap():
    code = (
        "import sys, mlpx.tracking, mlpx.analysis.plots; "
        "heavy = [m for m in ('mlflow', 'matplotlib', 'requests', 'sqlalchemy', 'hydra', "
        "'omegaconf') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_direct_sqlite_is_off_unless_asked_for():
    import yaml

    from mlpx.app.config import LoggerSettings

    assert LoggerSettings().direct_sqlite is False
    conf = yaml.safe_load((REPO / "conf" / "logger" / "mlflow.yaml").read_text())
    assert conf["direct_sqlite"] is False


def test_no_private_tracking_name_is_imported_elsewhere():
    """Other modules use mlpx.tracking's public names only (and only sqlite_direct.py may
    know MLflow's tables)."""
    import ast

    offenders = []
    for path in sorted((REPO / "mlpx").rglob("*.py")) + sorted((REPO / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlpx.tracking"):
                offenders += [
                    f"{path.relative_to(REPO)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
    assert offenders == []
    for path in (REPO / "mlpx").rglob("*.py"):
        if path.name != "sqlite_direct.py":
            assert "_tracking_client" not in path.read_text(), path


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------


def _full_history() -> dict[str, list[tuple[int, float]]]:
    epochs = range(5)
    return {
        "train/loss": [(e, 1.0 / (e + 1)) for e in epochs],
        "val/loss": [(e, 1.2 / (e + 1)) for e in epochs],
        "train/accuracy": [(e, 0.5 + 0.1 * e) for e in epochs],
        "val/accuracy": [(e, 0.45 + 0.1 * e) for e in epochs],
    }


def test_learning_curves_figure():
    from matplotlib.figure import Figure

    from mlpx.analysis.plots import learning_curves

    fig = learning_curves(_full_history())
    assert isinstance(fig, Figure)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "val"]
    assert [line.get_label() for line in acc_ax.get_lines()] == ["train", "val"]
    assert list(acc_ax.get_lines()[1].get_ydata()) == pytest.approx([0.45, 0.55, 0.65, 0.75, 0.85])

    partial = learning_curves({"train/loss": [(0, 1.0), (1, 0.5)]})  # missing keys skipped
    assert len(partial.axes) == 2
    assert [len(ax.get_lines()) for ax in partial.axes] == [1, 0]


def test_grad_norms_figure():
    from mlpx.analysis.plots import grad_norms

    history = {
        f"grad_norm/layer_{layer}": [(s, 10.0 ** (-layer) * (s + 1)) for s in range(20)]
        for layer in (1, 2, 10)
    }
    history["grad_norm/global"] = [(s, 1.0) for s in range(20)]
    history["train/loss"] = [(0, 1.0)]  # ignored
    fig = grad_norms(history)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["layer 1", "layer 2", "layer 10", "global"]


def test_log_figure_closes_pyplot_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    number = fig.number
    MemoryTracker().log_figure(fig, "figures/f.png")
    assert number not in plt.get_fignums()

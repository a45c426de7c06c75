"""MlflowTracker: a run in an MLflow tracking store, through MLflow's public client API.

:class:`MlflowTracker` uses :class:`mlflow.tracking.MlflowClient` (no fluent global state, so
several trackers can live in one process). Metric values are buffered and handed in batches
of up to 1000 to one sender thread per process (:mod:`mlpx.tracking.sender`, which calls
``log_batch(..., synchronous=True)``), so they are written while training goes on, one
SQL transaction / HTTP request per batch instead of one per value (a single ``log_metric``
costs ~8 ms on SQLite and ~64 ms over HTTP). ``flush()`` and ``finish()`` wait for those
writes and send what is left on the calling thread, retrying transient store errors
("database is locked") with backoff; a batch that could not be written goes back into the
buffer, so no value is lost.

Why not MLflow's own asynchronous logging (``log_batch(..., synchronous=False)``), used here
until December 2026: ``set_terminated`` then shuts MLflow's queue down and joins its logging
thread, which polls the queue with a 1 s timeout, so ending a run that logged more than 1000
values waited 0-1 s for nothing (0.32-1.0 s in 8 jobs of a joblib sweep; issue 14); a
``ThreadPoolExecutor`` waits for work without a timeout. Throughput is no worse, measured
alternating with 6370d4a (``python benchmarks/tracking_cost.py --repeats 5 --every 1
--modes none async``, twice each): logging 20000 values alone 0.121-0.134 ms/value wall
against 0.142-0.158, and fit with a value every step 0.62-0.70 s against 0.72-0.77 s. Where
the cost of logging matters (every step), ``direct_sqlite`` takes a fifteenth of either
(:mod:`mlpx.tracking.sqlite_direct`).

Runs left unfinished: a tracker that is garbage collected, or whose process exits, without
:meth:`MlflowTracker.finish` ends its run as KILLED (FAILED, with the traceback, when the
process dies of an uncaught exception), its buffered metrics sent first: a ``weakref.finalize``
per tracker and one exit hook over the runs still open.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from mlpx.redact import mask_secrets
from mlpx.tracking import sender
from mlpx.tracking.artifacts import check_artifact_root
from mlpx.tracking.base import (
    ERROR_ARTIFACT,
    ERROR_TAG,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
    TrackingError,
    check_status,
    chunks,
    close_figure,
    flatten,
    metric_value,
    param_value,
    sanitize_key,
    status_for_exception,
)
from mlpx.tracking.store import (
    check_tracking_uri,
    get_or_create_experiment,
    is_permanent,
    open_client,
    retries_for,
    run_tags,
    short_reason,
    store_error,
    with_retry,
)
from mlpx.tracking.ui import mark_experiment

__all__ = ["MlflowTracker"]

_logger = logging.getLogger("mlpx.tracking")
_T = TypeVar("_T")

#: Batches handed to the sender thread and not yet confirmed written before log_metrics
#: waits for the oldest one: a store that cannot keep up slows training down instead of
#: filling memory (8 batches: 8000 values, at ~50-100 ms a SQLite batch).
MAX_PENDING_BATCHES = 8

Row = tuple[str, float, int, int]  # (key, value, timestamp_ms, step)


class _RunState:
    """What is needed to send metrics and end a run, without a reference to the tracker.

    Held by the tracker, by a ``weakref.finalize`` (run ended if the tracker is garbage
    collected unfinished) and by the exit hook (run ended if the process exits first).
    ``lock`` (re-entrant: a finalizer may run on any thread, in the middle of anything) guards
    the buffer, the batches MLflow has not confirmed yet (``pending``) and the counters.
    """

    def __init__(self, client: Any, uri: str, run_id: str, writer: Any = None) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.writer = writer  # a sqlite_direct.SqliteMetricWriter, or None: log_batch
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.buffer: list[Row] = []
        self.pending: deque[tuple[list[Row], Any]] = deque()  # (rows, Future of log_batch)
        self.closing = False  # end() started: log_metrics refuses new values
        self.status = "RUNNING"
        self.retries = retries_for(uri)
        self.n_batches = 0
        self.n_values = 0

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"

    @property
    def unsent(self) -> int:
        with self.lock:
            return len(self.buffer) + sum(len(rows) for rows, _ in self.pending)

    # -- sending -------------------------------------------------------------------------

    def send_async(self, min_chunk: int) -> None:
        """Hand full chunks (>= ``min_chunk`` values, <= 1000) to :func:`sender.submit`, oldest
        values first; then wait for the oldest pending batches beyond
        :data:`MAX_PENDING_BATCHES`. With the direct SQLite writer, write them instead."""
        with self.lock:
            while self.buffer and len(self.buffer) >= min_chunk:
                rows = self.buffer[:MAX_METRICS_PER_BATCH]
                del self.buffer[: len(rows)]
                if self.writer is not None and self._write_direct(rows):
                    continue
                try:
                    batch = {"metrics": _metrics(rows), "synchronous": True}
                    ops = sender.submit(self.client.log_batch, self.run_id, **batch)
                except Exception as e:  # the sender refused them: keep them for a later send
                    self.buffer[:0] = rows
                    if is_permanent(e):
                        raise store_error(self.uri, "log metric values", e) from e
                    self._warn_kept(len(rows), e)
                    break
                self.pending.append((rows, ops))
            self._settle(MAX_PENDING_BATCHES)

    def _settle(self, keep: int) -> None:
        """Wait for the oldest pending batches until ``keep`` are left; the values of a batch
        MLflow could not write go back to the front of the buffer, with a warning."""
        failed: list[Row] = []
        fatal: Exception | None = None
        while len(self.pending) > keep:
            rows, ops = self.pending.popleft()
            try:
                ops.result()
            except Exception as e:
                failed += rows
                fatal = fatal or (e if is_permanent(e) else self._warn_kept(len(rows), e))
            else:
                self.n_batches += 1
                self.n_values += len(rows)
        if failed:
            self.buffer[:0] = failed
        if fatal is not None:  # a full disk, no permission: no later send can succeed
            raise store_error(self.uri, f"log {len(failed)} metric values", fatal) from fatal

    def _warn_kept(self, n: int, error: BaseException) -> None:
        _logger.warning(
            "run %s: could not send metric values in the background (%d kept for the next "
            "send; flush() or finish() will try again): %s",
            self.run_id,
            n,
            str(error)[:300],
        )

    def send_all(self) -> None:
        """Wait for every pending batch, then send the whole buffer on this thread with
        retries, 1000 values per call. A chunk that cannot be sent goes back to the front of
        the buffer and the error is raised."""
        with self.lock:
            self._settle(0)
            while self.buffer:
                rows = self.buffer[:MAX_METRICS_PER_BATCH]
                del self.buffer[: len(rows)]
                try:
                    if self.writer is None or not self._write_direct(rows):
                        with_retry(
                            self.client.log_batch,
                            self.run_id,
                            metrics=_metrics(rows),
                            synchronous=True,  # whatever MLFLOW_ENABLE_ASYNC_LOGGING says
                            retries=self.retries,
                            what=f"log_batch of {len(rows)} metrics",
                        )
                        self.n_batches += 1
                        self.n_values += len(rows)
                except BaseException:
                    self.buffer[:0] = rows  # never lose values: back to the front, in order
                    raise

    def _write_direct(self, rows: list[Row]) -> bool:
        """Write ``rows`` with the direct SQLite writer. False: send them with ``log_batch``
        (the run is not active and MLflow should say so; or the writer failed, and is
        dropped for good)."""
        try:
            written = with_retry(
                self.writer.write, rows, retries=self.retries, what=f"writing {len(rows)} values"
            )
        except Exception as e:
            self.writer.close()
            self.writer = None
            _logger.warning(
                "run %s: writing metric values straight into the SQLite store failed (%s); "
                "sending them with MLflow's log_batch from now on",
                self.run_id,
                short_reason(e),
            )
            return False
        if written:
            self.n_batches += 1
            self.n_values += len(rows)
        return written

    # -- ending --------------------------------------------------------------------------

    def end(self, status: str, error: str | None, *, terminate: bool = True) -> None:
        """Send every value, record the error, set the terminal status (not when
        ``terminate`` is False: the run is handed off). Raises the first failure (after doing
        all it can)."""
        with self.lock:
            if self.finished:
                return
            self.closing = True
            first_error: BaseException | None = None
            try:
                self.send_all()
            except Exception as e:
                first_error = e
                _logger.warning(
                    "run %s: %d buffered metric values could not be sent: %s",
                    self.run_id,
                    len(self.buffer),
                    (str(e).splitlines() or [type(e).__name__])[0][:300],
                )
            if error:
                try:
                    from mlflow.entities import RunTag

                    self.call(
                        self.client.log_batch,
                        self.run_id,
                        tags=[RunTag(ERROR_TAG, error[:MAX_TAG_VAL_LENGTH])],
                        what="set error tag",
                    )
                    self.client.log_text(self.run_id, error, ERROR_ARTIFACT)
                except Exception as e:
                    first_error = first_error or e
                    _logger.warning("run %s: could not record the error: %s", self.run_id, e)
            try:
                if terminate:
                    self.call(self.client.set_terminated, self.run_id, status, what="end run")
                self.status = status if terminate else "HANDED OFF"
            except Exception as e:
                first_error = first_error or e
                _logger.warning("run %s: could not set status %s: %s", self.run_id, status, e)
                self.status = f"{status} (not recorded)"  # no second try from the exit hook
            finally:
                _LIVE_RUNS.discard(self)
                sender.stop_if_idle(open_runs=len(_LIVE_RUNS))
                if self.writer is not None:
                    self.writer.close()
            if first_error is not None:
                raise first_error

    def abandon(self, status: str, error: str) -> None:
        """End the run from a finalizer or the exit hook: never raises."""
        if self.finished or os.getpid() != self.pid:
            return
        if sender.on_sender_thread():
            # collected on the sender thread: end() waits for this thread's own batches
            threading.Thread(target=self.abandon, args=(status, error), name="mlpx-end").start()
            return
        try:
            self.end(status, error)
        except Exception as e:
            _logger.warning("run %s could not be ended as %s: %s", self.run_id, status, e)

    def call(self, fn: Callable[..., _T], *args: Any, what: str, **kwargs: Any) -> _T:
        return with_retry(fn, *args, retries=self.retries, what=what, **kwargs)


def _metrics(rows: list[Row]) -> list[Any]:
    from mlflow.entities import Metric

    return [Metric(k, v, ts, step) for k, v, ts, step in rows]


_LIVE_RUNS: set[_RunState] = set()
_EXIT_HOOK_REGISTERED = False


def _end_live_runs_at_exit() -> None:
    """Exit hook: end runs whose tracker never called finish()."""
    # Set when the interpreter dies of an uncaught exception (last_exc from Python 3.12).
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is not None:
        status, error = status_for_exception(type(exc), exc, exc.__traceback__)
        error = f"process exited with an uncaught exception before finish():\n{error}"
    else:
        status, error = "KILLED", "process exited without calling finish() on the tracker"
    for state in list(_LIVE_RUNS):
        state.abandon(status, error or "")


def _register_exit_hook() -> None:
    # Registered after mlflow is imported, so (atexit being LIFO) it runs before mlflow's
    # own exit handlers tear down its clients. The sender thread has written its batches
    # and stopped before any exit hook runs (concurrent.futures joins it first): end() then
    # only makes synchronous calls.
    global _EXIT_HOOK_REGISTERED
    if not _EXIT_HOOK_REGISTERED:
        atexit.register(_end_live_runs_at_exit)
        _EXIT_HOOK_REGISTERED = True


class MlflowTracker:
    """A run in an MLflow tracking store, written through ``MlflowClient``.

    Args:
        tracking_uri: where to record; None -> ``MLFLOW_TRACKING_URI`` or MLflow's default
            ``sqlite:///<cwd>/mlflow.db`` (see :func:`mlpx.tracking.resolve_tracking_uri`).
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
            ``metrics``/``latest_metrics`` tables, on the calling thread, instead of
            ``log_batch`` (opt-in; see :mod:`mlpx.tracking.sqlite_direct`). Default False.

    Metrics are buffered and handed to a sender thread (``log_batch``, <= 1000 values per
    batch; see the module's docstring), so logging does not wait for the store
    unless more than :data:`MAX_PENDING_BATCHES` batches are still unwritten; :meth:`flush`
    and :meth:`finish` wait for them and send the rest on the calling thread. Values MLflow
    could not write stay buffered, in order, until they can be. Params, tags and artifacts
    are written on the calling thread, params and tags in batches of 100. Transient store
    errors ("database is locked") are retried with backoff. A tracker that is garbage
    collected, or whose process exits, without :meth:`finish` ends its run as KILLED (FAILED,
    with the traceback, if the process died of an exception), its buffered metrics sent
    first. Usable as a context manager: an exception inside ends the run FAILED.

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
        direct_sqlite: bool = False,
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
        retries = retries_for(uri)
        try:
            self._client = open_client(uri)
            self.experiment_id = get_or_create_experiment(
                self._client, uri, experiment_name, artifact_location
            )
            check_artifact_root(self._client, self.experiment_id, uri)  # before, not at the end
            mark_experiment(self._client, self.experiment_id)  # the UI's "Model training"
            if resume_run_id is None:
                run = with_retry(
                    self._client.create_run,
                    self.experiment_id,
                    tags=run_tags(tags, parent_run_id),
                    run_name=mask_secrets(run_name),
                    retries=retries,
                    what="create run",
                )
            else:  # continue an existing run: RUNNING again, its history kept
                run = self._client.get_run(resume_run_id)
                with_retry(
                    self._client.update_run,
                    resume_run_id,
                    status="RUNNING",
                    retries=retries,
                    what="reopen run",
                )
        except TrackingError:
            raise
        except Exception as e:
            raise store_error(uri, f"create a run in experiment {experiment_name!r}", e) from e
        self.run_id: str | None = run.info.run_id
        self.run_name: str = run.info.run_name
        self.artifact_uri: str = run.info.artifact_uri
        writer = None
        if direct_sqlite:
            from mlpx.tracking.sqlite_direct import SqliteMetricWriter

            writer = SqliteMetricWriter.create(uri, run.info.run_id)
        self._state = _RunState(self._client, uri, run.info.run_id, writer)
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
        for key, value in flatten(mask_secrets(params)).items():  # no credentials stored
            key, text = sanitize_key(key), param_value(value)
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
        for chunk in chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(self._client.log_batch, self._run_id, params=list(chunk), what="log params")
        self._params.update(todo)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set run tags (values -> str, truncated to 8000 chars), in batches of 100."""
        from mlflow.entities import RunTag

        items = [
            RunTag(sanitize_key(k), mask_secrets(str(v))[:MAX_TAG_VAL_LENGTH])
            for k, v in dict(tags).items()
        ]
        for chunk in chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call(self._client.log_batch, self._run_id, tags=list(chunk), what="set tags")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer one value per key at ``step``; returns without waiting for the store.

        When ``flush_every`` values are waiting, or ``flush_seconds`` passed since the last
        send, they are handed to the sender thread. If MLflow cannot write a
        batch, its values go back into the buffer (a warning is logged, when the batch is
        waited for) and go with the next send; :meth:`flush` and :meth:`finish` raise instead.
        """
        timestamp = int(time.time() * 1000)
        step = int(step)
        keys = self._keys
        rows = []
        for key, value in metrics.items():
            name = keys.get(key)
            if name is None:
                name = keys[key] = sanitize_key(key)
            rows.append((name, metric_value(key, value), timestamp, step))
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
            state.send_async(min_chunk)

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
                save_kwargs={"dpi": dpi},  # constrained layout: no second "tight" draw
                what=f"log figure {name}",
            )
        finally:
            close_figure(figure)

    def log_text(self, text: str, name: str) -> None:
        """Save ``text`` as the artifact file ``name`` (e.g. ``"config.yaml"``)."""
        text = mask_secrets(text)  # e.g. a config that holds logger.tracking_uri
        self._call(self._client.log_text, self._run_id, text, name, what=f"log text {name}")

    def flush(self) -> None:
        """Send every buffered metric value now; return once all are stored.

        Waits for the batches handed to the sender thread, then sends the rest on
        this thread. Raises if the store refuses the values (they stay buffered).
        """
        self._state.send_all()
        self._last_flush = time.monotonic()

    def finish(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Flush, record ``error`` (tag ``error`` + artifact ``error.txt``), end the run.

        Every value still buffered or in MLflow's queue is stored before the status is set.
        Idempotent: later calls do nothing. Raises (after ending the run as well as it can)
        only when ``status`` is FINISHED and something could not be written; on the failure
        paths (FAILED/KILLED) problems are logged, so the original exception stays visible.
        """
        check_status(status)
        if self._state.finished:
            return
        try:
            self._state.end(status, mask_secrets(error))
        except Exception as e:
            if status == "FINISHED":
                raise TrackingError(
                    f"run {self.run_id} in {self.tracking_uri} could not be finished cleanly: {e}"
                ) from e
        finally:
            self._finalizer.detach()

    def hand_off(self) -> None:
        """Like :meth:`finish` but the run stays RUNNING: every value is stored, the tracker
        lets go of the run, and a helper process (:mod:`mlpx.app.offload`) ends it later."""
        self._state.send_all()  # raises with the run still this tracker's to finish
        self._state.end("FINISHED", None, terminate=False)
        self._finalizer.detach()

    # -- state ---------------------------------------------------------------------------

    @property
    def _run_id(self) -> str:
        return self._state.run_id

    @property
    def status(self) -> str:
        """``RUNNING`` until :meth:`finish`, then the status that was set."""
        return self._state.status

    @property
    def direct_sqlite(self) -> bool:
        """Whether metric values go straight into the SQLite tables (False after a failure)."""
        return self._state.writer is not None

    @property
    def buffered(self) -> int:
        """Metric values not known to be in the store: waiting in the buffer, or handed to
        the sender thread and not yet waited for (by :meth:`flush`)."""
        return self._state.unsent

    def _call(self, fn: Callable[..., _T], *args: Any, what: str, **kwargs: Any) -> _T:
        return self._state.call(fn, *args, what=what, **kwargs)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(*status_for_exception(exc_type, exc, tb))

    def __repr__(self) -> str:
        return (
            f"MlflowTracker(uri={self.tracking_uri!r}, experiment={self.experiment_name!r}, "
            f"run_name={self.run_name!r}, run_id={self.run_id!r}, status={self.status!r}, "
            f"buffered={self.buffered}, sent={self._state.n_values} values in "
            f"{self._state.n_batches} batches)"
        )

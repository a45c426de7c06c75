"""The process's sender thread: writes a tracker's metric batches while training goes on.

One ``ThreadPoolExecutor`` worker per process (:class:`mlpx.tracking.mlflow.MlflowTracker`
hands it ``log_batch`` calls and waits for their futures), started when a batch is handed to
it and stopped when the last open run ends, so that no thread of ours outlives the runs (a
fork then finds only the main thread: :mod:`mlpx.app.figure_process`). Idle, it waits for
work without a timeout, unlike MLflow's own asynchronous logging queue, whose shutdown in
``set_terminated`` waited 0-1 s (see :mod:`mlpx.tracking.mlflow`). At exit the interpreter
joins it, its calls done, before the exit hooks run (``concurrent.futures``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["THREAD_NAME", "on_sender_thread", "stop_if_idle", "submit"]

#: The sender thread's name prefix.
THREAD_NAME = "mlpx-metrics"

_executor: tuple[int, ThreadPoolExecutor] | None = None  # (pid, executor)
_lock = threading.Lock()


def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
    """Run ``fn(*args, **kwargs)`` on the sender thread (started if needed; a new one in a
    forked child), after the calls handed to it before."""
    global _executor
    with _lock:
        if _executor is None or _executor[0] != os.getpid():
            _executor = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix=THREAD_NAME))
        return _executor[1].submit(fn, *args, **kwargs)


def on_sender_thread() -> bool:
    """Whether the calling thread is the sender thread."""
    return threading.current_thread().name.startswith(THREAD_NAME)


def stop_if_idle(*, open_runs: int) -> None:
    """Stop the sender thread when ``open_runs`` is 0 (the caller has waited for its runs'
    batches, so it is idle). Not from the sender thread itself, which cannot join itself."""
    global _executor
    with _lock:
        if open_runs or _executor is None or _executor[0] != os.getpid() or on_sender_thread():
            return
        _executor[1].shutdown(wait=True)
        _executor = None

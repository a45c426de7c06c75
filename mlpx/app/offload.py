"""A helper process that finishes a sweep's runs while the next job trains (issue 14).

A job of a sweep ends by drawing its two figures (learning curves, gradient norms: ~0.1 s
each, all matplotlib) and logging its MLflow model (~0.1 s): work the next job does not
depend on. When the jobs run one at a time in the process that launched the sweep (Hydra's
basic launcher under the grid and Optuna sweepers), ``sweep.artifact_worker=true`` (the
default) hands that tail to one helper process, started with the sweep, on the other core:

1. the job flushes its metrics, tags and texts as always, then lets go of its run without
   ending it (:meth:`MlflowTracker.hand_off`); the run stays RUNNING;
2. the helper draws and logs the figures, logs the model (and its ``mlpx.model_uri`` tag),
   then sets the run's status: what the job would have done, in the same order, with the same
   names, so the store's content is the same either way;
3. the sweep's end (:func:`stop_worker`, before the summary that links the best model) waits
   for every handed-off run.

Nothing is lost: the main process keeps each tail until the helper confirms it; a helper
that died leaves its tails to the main process, which finishes them itself (with a warning).
The helper ignores Ctrl-C and SIGTERM (they are the job's to handle) and finishes the tails
it was given even when the main process is gone; a run it never got stays RUNNING, which a
re-launched sweep trains again (only FINISHED runs are reused). At most
:data:`MAX_PENDING` tails wait at once: a slow helper slows the sweep instead of holding
many networks in memory. Jobs in other processes (joblib, SLURM) finish their runs
themselves, as does every single run.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpx.app.warn import first_line
from mlpx.backend import to_numpy

__all__ = [
    "BEHIND",
    "MAX_PENDING",
    "ArtifactWorker",
    "DataSummary",
    "NetArrays",
    "RunTail",
    "current_worker",
    "draw_figures",
    "finish_tail",
    "log_figures",
    "serve",
    "start_worker",
    "stop_worker",
]

#: Tails handed to the helper and not yet confirmed before :meth:`ArtifactWorker.submit` waits.
MAX_PENDING = 4
#: With this many tails waiting, a job logs its model itself (the helper is behind).
BEHIND = 2
_FIGURE_KEYS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy")


def draw_figures(history: dict[str, list[tuple[int, float]]]) -> list[tuple[str, Any]]:
    """The run's two figures from its metric history ``{key: [(step, value), ...]}``:
    ``figures/learning_curves.png`` (per epoch, through the ``epoch`` key's step -> epoch) and
    ``figures/grad_norms.png`` (per step). Bare ``Figure`` objects, no pyplot."""
    from mlpx.analysis import plots

    epoch_steps = dict(history.get("epoch", []))  # step -> epoch, for per-epoch curves
    by_epoch = {
        k: [(int(epoch_steps[s]), v) for s, v in pts if s in epoch_steps]
        for k, pts in history.items()
        if k in _FIGURE_KEYS
    }
    return [
        ("figures/learning_curves.png", plots.learning_curves(by_epoch)),
        ("figures/grad_norms.png", plots.grad_norms(history)),
    ]


def log_figures(tracker: Any, history: dict[str, list[tuple[int, float]]]) -> None:
    """Draw the run's two figures (:func:`draw_figures`) and log each with
    ``tracker.log_figure``, in this process."""
    for name, fig in draw_figures(history):
        tracker.log_figure(fig, name)


def figure_history(history: dict[str, list[tuple[int, float]]]) -> dict[str, list[Any]]:
    """The part of ``history`` the figures read (what is sent to the helper)."""
    keep = ("epoch", *_FIGURE_KEYS)
    return {k: list(v) for k, v in history.items() if k in keep or k.startswith("grad_norm/")}


@dataclass
class NetArrays:
    """What :func:`mlpx.tracking.model.log_model` reads of a network, as NumPy arrays:
    ``weights`` W_l (p_l, p_(l-1)), ``biases`` b_l (p_l,), ``activations`` (L names)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[str]

    @classmethod
    def of(cls, net: Any) -> NetArrays:
        return cls(
            [np.array(to_numpy(W)) for W in net.weights],
            [np.array(to_numpy(b)) for b in net.biases],
            [str(a) for a in net.activations],
        )


@dataclass
class DataSummary:
    """What :func:`mlpx.tracking.model.log_model` reads of a dataset: the input example rows
    (``X_test`` (n, d), or ``X_train`` when there is no test split), the standardisation
    ``mean``/``scale`` (d,) or None, ``n_features``, ``n_classes``, ``class_names``."""

    X_test: np.ndarray
    X_train: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None
    n_features: int
    n_classes: int
    class_names: list[str]

    @classmethod
    def of(cls, data: Any, n_examples: int = 5) -> DataSummary:
        def rows(X: Any) -> np.ndarray:
            return np.array(to_numpy(X[:n_examples]))

        return cls(
            rows(data.X_test),
            rows(data.X_train),
            None if data.mean is None else np.asarray(to_numpy(data.mean), dtype=np.float64),
            None if data.scale is None else np.asarray(to_numpy(data.scale), dtype=np.float64),
            int(data.n_features),
            int(data.n_classes),
            [str(c) for c in data.class_names],
        )


@dataclass
class RunTail:
    """The end of one run, to be done after its job: ``figures`` (a history for
    :func:`draw_figures`, or None), ``model`` (the keyword arguments of
    :func:`mlpx.tracking.model.log_model`: ``net``, ``data``, ``step``,
    ``registered_model_name``; or None), then the run's terminal ``status``."""

    tracking_uri: str
    run_id: str
    status: str = "FINISHED"
    figures: dict[str, list[Any]] | None = None
    model: dict[str, Any] | None = None

    @property
    def work(self) -> bool:
        return self.figures is not None or self.model is not None


def _warn(tail: RunTail, what: str, exc: BaseException) -> None:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    line = f"mlpx: warning: run {tail.run_id}: could not {what}: {text}"
    print(line, file=sys.stderr, flush=True)


_CLIENTS: dict[str, Any] = {}


def finish_tail(tail: RunTail) -> str | None:
    """Log ``tail``'s figures and model, then end its run. Returns the run's error (a figure
    that could not be logged: the run ends FAILED, as in the job) or None. A model that
    could not be logged is a warning, as in the job (:func:`mlpx.app.record.end_record`)."""
    from mlpx.redact import mask_secrets
    from mlpx.tracking.base import ERROR_ARTIFACT, ERROR_TAG, MAX_TAG_VAL_LENGTH, close_figure
    from mlpx.tracking.store import open_client, retries_for, with_retry

    uri, run_id = tail.tracking_uri, tail.run_id
    if uri not in _CLIENTS:  # one per store: opening checks a SQLite file under a lock
        _CLIENTS[uri] = open_client(uri)
    client = _CLIENTS[uri]
    retries = retries_for(uri)
    status, error = tail.status, None
    try:
        for name, fig in draw_figures(tail.figures) if tail.figures is not None else ():
            try:
                with_retry(
                    client.log_figure,
                    run_id,
                    fig,
                    name,
                    save_kwargs={"dpi": 110},
                    retries=retries,
                    what=f"log figure {name}",
                )
            finally:
                close_figure(fig)
    except Exception as exc:
        status, error = "FAILED", mask_secrets(f"{type(exc).__name__}: {exc}")
    if tail.model is not None and error is None:
        from mlpx.tracking.model import log_model

        try:
            info = log_model(uri, run_id, **tail.model)
            with_retry(
                client.set_tag,
                run_id,
                "mlpx.model_uri",
                info.model_uri,
                retries=retries,
                what="set tag mlpx.model_uri",
            )
        except Exception as exc:  # the run and its metrics stand without the model
            _warn(tail, "log the model", exc)
    if error is not None:
        try:
            client.set_tag(run_id, ERROR_TAG, error[:MAX_TAG_VAL_LENGTH])
            client.log_text(run_id, error, ERROR_ARTIFACT)
        except Exception as exc:
            _warn(tail, "record the error", exc)
    with_retry(client.set_terminated, run_id, status, retries=retries, what="end run")
    return error


def _warm_up(tracking_uri: str | None) -> None:
    """Draw both figures once, save a 2-feature model into a temporary folder, then open the
    store (matplotlib's fonts, MLflow's model code and requirement checks, its store: ~2.5 s
    the first time in a process) while the main process starts its sweep, so that the first
    tail costs what the others do. The store comes last: opening a SQLite store takes a lock
    that the main process needs while it prepares the store and the parent run."""
    import io
    import tempfile

    from mlpx.tracking.base import close_figure
    from mlpx.tracking.model import save_model
    from mlpx.tracking.store import open_client, resolve_tracking_uri, uri_scheme

    history = {
        "epoch": [(1, 1.0), (2, 2.0)],
        **{k: [(1, 0.5), (2, 0.25)] for k in (*_FIGURE_KEYS, "grad_norm/layer_1")},
    }
    for _, fig in draw_figures(history):
        fig.savefig(io.BytesIO(), format="png", dpi=110)
        close_figure(fig)
    net = NetArrays([np.eye(2)], [np.zeros(2)], ["identity"])
    data = DataSummary(np.eye(2), np.eye(2), None, None, 2, 2, ["a", "b"])
    with tempfile.TemporaryDirectory(prefix="mlpx-warm-up-") as tmp:
        save_model(os.path.join(tmp, "model"), net, data)
    uri = resolve_tracking_uri(tracking_uri)
    if uri_scheme(uri) not in ("http", "https", "file", "databricks"):
        # A database store: its module (SQLAlchemy, alembic: ~1 s) imported here, not while
        # open_client holds the store's lock, which every job's tracker takes too.
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    _CLIENTS[uri] = open_client(uri)


def serve(  # pragma: no cover - runs in the helper
    read_fd: int, write_fd: int, tracking_uri: str | None = None
) -> None:
    """The helper's loop (``python -c "from mlpx.app.offload import serve; serve(r, w, uri)"``,
    ``uri``: the sweep's ``logger.tracking_uri``, opened while warming up):
    finish each tail received on the pipe ``read_fd``, confirm it on ``write_fd`` as
    ``(run_id, error, ended)``; stop at ``None`` or when the main process is gone (its end
    of the pipe closed), after finishing every tail already received."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the job's Ctrl-C: finish what was given
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    tasks = Connection(read_fd, writable=False)
    acks = Connection(write_fd, readable=False)

    def receive() -> None:  # empties the pipe at once, so that the main process never waits
        while True:
            try:
                tail = tasks.recv()
            except Exception:  # closed (EOF), or unreadable: the main process finishes the rest
                tail = None
            inbox.put(tail)
            if tail is None:
                return

    threading.Thread(target=receive, daemon=True).start()
    try:
        _warm_up(tracking_uri)
    except Exception:  # only time is at stake: the tails say what really fails
        pass

    while (tail := inbox.get()) is not None:
        ended = True
        try:
            error = finish_tail(tail)
        except Exception as exc:  # e.g. the store refused the status: the main process retries
            error, ended = f"{type(exc).__name__}: {exc}", False
            _warn(tail, "finish the run (mlpx tries again)", exc)
        try:
            acks.send((tail.run_id, error, ended))
        except OSError:
            pass  # the main process is gone: go on with what was received
    # Exiting takes ~1 s (MLflow's exit handlers): let go of the terminal or of the pipes of
    # whoever ran mlpx, which would otherwise wait for it after mlpx itself has exited.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


class ArtifactWorker:
    """The helper process and the tails it has not confirmed yet (see the module text)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        import subprocess
        from multiprocessing.connection import Connection
        from pathlib import Path

        to_read, to_helper = os.pipe()
        from_helper, to_write = os.pipe()
        env = dict(os.environ)  # the helper imports this very mlpx (a checkout, a worktree)
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from mlpx.app.offload import serve; "
                    f"serve({to_read}, {to_write}, {tracking_uri!r})",
                ],
                pass_fds=(to_read, to_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # it writes warnings only, to stderr
                env=env,
                start_new_session=True,  # not in the terminal's group: Ctrl-C is the job's
            )
        finally:
            os.close(to_read)
            os.close(to_write)
        self._tasks = Connection(to_helper, readable=False)
        self._acks = Connection(from_helper, writable=False)
        self.pending: dict[str, RunTail] = {}
        self.errors: dict[str, str] = {}  # run id -> the error its run ended with
        self._done: dict[str, Callable[[], None]] = {}  # run id -> called once it is ended

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def poll(self) -> int:
        """Take the confirmations that arrived (without waiting: runs ended, their ``done``
        called); return how many tails are still waiting."""
        try:
            while self.pending and self._acks.poll(0):
                self._collect()
        except OSError:
            pass
        return len(self.pending)

    def submit(self, tail: RunTail, done: Callable[[], None] | None = None) -> None:
        """Hand ``tail`` to the helper, after waiting for it to confirm older ones while
        :data:`MAX_PENDING` are waiting; a dead helper's tails are finished here. ``done``
        is called once the run is ended (e.g. releasing the job's config claim)."""
        while len(self.pending) >= MAX_PENDING and self._collect():
            pass
        self.pending[tail.run_id] = tail
        if done is not None:
            self._done[tail.run_id] = done
        try:
            self._tasks.send(tail)
        except OSError:  # the helper is gone
            self._finish_here()

    def _collect(self) -> bool:
        """Take one confirmation (waiting for it); False when the helper is gone instead."""
        try:
            run_id, error, ended = self._acks.recv()
        except (EOFError, OSError):
            self._finish_here()
            return False
        tail = self.pending.pop(run_id, None)
        if not ended and tail is not None:  # the helper failed half-way: once more, here
            error = self._finish_one(tail)
        if error:
            self.errors[run_id] = error
        self._ended(run_id)
        return True

    def _ended(self, run_id: str) -> None:
        done = self._done.pop(run_id, None)
        if done is not None:
            done()

    def _finish_here(self) -> None:
        if not self.pending:
            return
        print(
            f"mlpx: warning: the artifact helper process stopped (exit code "
            f"{self._process.poll()}); logging the figures and models of "
            f"{len(self.pending)} run(s) here",
            file=sys.stderr,
        )
        tails, self.pending = list(self.pending.values()), {}
        for tail in tails:
            error = self._finish_one(tail)
            if error:
                self.errors[tail.run_id] = error
            self._ended(tail.run_id)

    @staticmethod
    def _finish_one(tail: RunTail) -> str | None:
        """:func:`finish_tail` in this process; a failure is a warning (the run stays
        RUNNING, as a job whose store fails at its end leaves it) and the run's error."""
        try:
            return finish_tail(tail)
        except Exception as exc:
            _warn(tail, "finish the run", exc)
            return f"{type(exc).__name__}: {exc}"

    def close(self) -> dict[str, str]:
        """Wait for every tail, stop the helper; returns ``{run_id: error}`` of the runs
        that ended FAILED in the helper."""
        while self.pending and self._collect():
            pass
        try:
            self._tasks.send(None)
        except OSError:
            pass
        self._tasks.close()  # the helper exits by itself (~1 s of MLflow's exit handlers:
        self._acks.close()  # not waited for, every run it had is ended already)
        return dict(self.errors)


_WORKER: ArtifactWorker | None = None


def start_worker(tracking_uri: str | None = None) -> ArtifactWorker | None:
    """Start this process's helper (once) for the store at ``tracking_uri`` (None: MLflow's
    default, as for the jobs); None, with a warning, when it cannot start."""
    global _WORKER
    if _WORKER is None:
        try:
            _WORKER = ArtifactWorker(tracking_uri)
        except Exception as exc:
            print(
                f"mlpx: warning: could not start the artifact helper process ({first_line(exc)}); "
                "each job logs its figures and model itself",
                file=sys.stderr,
            )
            return None
        atexit.register(stop_worker)
        _leave_a_core()
    return _WORKER


def _leave_a_core() -> None:
    """The jobs' BLAS threads: one core fewer (at least one), the helper's. On 2 cores, two
    BLAS threads and the helper fight for them: the digits grid's training took 1.9x longer."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(limits=max(1, (os.cpu_count() or 1) - 1), user_api="blas")


def current_worker() -> ArtifactWorker | None:
    """The helper started by this process's sweep, or None (a single run, a joblib job)."""
    return _WORKER


def stop_worker() -> dict[str, str]:
    """Wait for the helper's runs and stop it (see :meth:`ArtifactWorker.close`)."""
    global _WORKER
    worker, _WORKER = _WORKER, None
    return worker.close() if worker is not None else {}

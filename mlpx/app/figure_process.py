"""A single run's two figures drawn in a forked child while the run goes on (issue 14).

A run ends with its learning curves and gradient norms (matplotlib's import, two figures,
two PNG files: ~0.8 s here) and its MLflow model (~0.9 s), one after the other. In a sweep
the artifact helper (:mod:`mlpx.app.offload`) takes both; a single run has nothing to
overlap them with but each other. On a POSIX system :func:`start` forks a child at the
run's start, before the tracker exists (only the main thread runs, nothing of MLflow is
open): the child imports matplotlib and draws a throwaway figure while the run opens its
store and trains, then waits. After training :meth:`FigureProcess.submit` sends it the
metric history (:func:`mlpx.app.offload.figure_history`); it saves both figures as
``savefig(path, dpi=110)``, which is what ``MlflowClient.log_figure`` does, while the run
logs its model; :meth:`FigureProcess.collect` waits for the files and logs them with
``tracker.log_artifact`` under the names ``tracker.log_figure`` gives them
(``figures/learning_curves.png``, ``figures/grad_norms.png``). The store's content is the
same either way.

Nothing is lost: a child that fails, dies or does not answer within :data:`TIMEOUT_S`
leaves the figures to the run, drawn in its own process (with a warning). The child ignores
Ctrl-C and SIGTERM (they are the run's to handle), holds none of the caller's stdio (a
caller reading mlpx's stderr to its end never waits for it), never runs the run's exit
handlers (``os._exit``) and exits when the run closes its end of the pipe or is gone.
``MLPX_FIGURE_PROCESS=0`` draws in the run's process, as before.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from typing import Any

__all__ = ["TIMEOUT_S", "FigureProcess", "start"]

#: Seconds :meth:`FigureProcess.collect` waits for the child's figures before drawing them.
TIMEOUT_S = 120.0


class FigureProcess:
    """The forked child (process id ``pid``), the run's end of the pipe to it, and the
    temporary ``folder`` it saves the figures in (removed by :meth:`collect`)."""

    def __init__(self, pid: int, conn: Any, folder: str) -> None:
        self.pid, self._conn, self.folder = pid, conn, folder
        self._history: dict[str, list[Any]] | None = None

    def submit(self, history: dict[str, list[tuple[int, float]]]) -> None:
        """Send the run's metric history ``{key: [(step, value), ...]}`` to the child."""
        from mlpx.app.offload import figure_history

        self._history = figure_history(history)
        try:
            self._conn.send(self._history)
        except (OSError, ValueError):  # the child is gone: collect() draws them here
            pass

    def collect(self, tracker: Any) -> None:
        """Log the child's figures with ``tracker`` (waiting up to :data:`TIMEOUT_S`); when
        the child failed, draw and log them here. A figure that cannot be logged raises, as
        ``tracker.log_figure`` would."""
        if self._history is None:  # submit() never came (the run failed before): nothing
            self.close()
            return
        answer: Any = None
        try:
            if self._conn.poll(TIMEOUT_S):
                answer = self._conn.recv()
        except (EOFError, OSError):
            pass
        try:
            if isinstance(answer, list):
                for name in answer:
                    folder = posixpath.dirname(name) or None
                    tracker.log_artifact(os.path.join(self.folder, name), folder)
                return
            why = answer if isinstance(answer, str) else "it stopped without an answer"
            print(
                f"mlpx: warning: the figure process failed ({why}); drawing the figures here",
                file=sys.stderr,
            )
            from mlpx.app.offload import log_figures

            log_figures(tracker, self._history)
        finally:
            self.close()

    def close(self) -> None:
        """Close the pipe (the child exits), reap the child and remove the folder."""
        try:
            self._conn.close()
        except OSError:
            pass
        try:
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):  # still drawing: not needed now
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped already
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> FigureProcess | None:
    """Fork the figure child; None where that is not possible or wanted (no ``os.fork``,
    ``MLPX_FIGURE_PROCESS=0``, other threads running, a failed fork): the run then draws
    its figures itself."""
    if not hasattr(os, "fork") or os.environ.get("MLPX_FIGURE_PROCESS", "1") == "0":
        return None
    if threading.active_count() > 1:  # a fork copies one thread: only a lone thread forks
        return None
    from multiprocessing.connection import Pipe

    folder = tempfile.mkdtemp(prefix="mlpx-figures-")
    ours, theirs = Pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns of any thread, e.g. OpenBLAS's
            warnings.simplefilter("ignore", DeprecationWarning)  # idle pool, which the child
            pid = os.fork()  # never waits on (OpenBLAS resets it in a forked child)
    except OSError:
        ours.close()
        theirs.close()
        shutil.rmtree(folder, ignore_errors=True)
        return None
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            ours.close()
            _child(theirs, folder)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    return FigureProcess(pid, ours, folder)


def _child(conn: Any, folder: str) -> None:  # pragma: no cover - runs in the child
    """Warm up, wait for the history, save both figures under ``folder``; answer with their
    names (a list) or with the error (a string)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    warnings.simplefilter("ignore")  # nobody reads them: errors go back on the pipe
    from mlpx.app.offload import draw_figures
    from mlpx.tracking.base import close_figure

    try:  # matplotlib's import and fonts, while the run opens its store and trains
        import io

        warm = {"epoch": [(1, 1.0), (2, 2.0)], "train/loss": [(1, 1.0), (2, 0.5)]}
        for _, fig in draw_figures(warm):
            fig.savefig(io.BytesIO(), format="png", dpi=110)
            close_figure(fig)
    except Exception:  # only time is at stake: the real figures say what fails
        pass
    try:
        history = conn.recv()
    except (EOFError, OSError):  # the run ended without figures, or is gone
        shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        names = []
        for name, fig in draw_figures(history):
            path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fig.savefig(path, dpi=110)  # as MlflowClient.log_figure(save_kwargs={"dpi": 110})
            finally:
                close_figure(fig)
            names.append(name)
        conn.send(names)
    except Exception as exc:
        conn.send(f"{type(exc).__name__}: {exc}")

"""SIGINT and SIGTERM at every phase of a run: one handler for the whole process.

A run goes through phases that a signal must end differently (issue 19, case 4):

* ``immediate`` (the default: composing the config, loading data, building, and after
  training: figures, analyses, final logging) raises :class:`Killed` where the program
  is, so the run is ended KILLED and the process exits ``128 + signum`` with one line;
* ``graceful`` (inside ``train.fit``) asks the loop to finish its step and write a
  checkpoint (``StopRequest``); a second signal stops at once (:class:`Killed`);
* ``deferred`` (creating the MLflow run, ending it) records the signal and raises
  :class:`Killed` when the section is done, so no run is created without its handle and
  no run is left half-ended; a second signal stops at once.

``MLPX_TEST_PAUSE=<phase>[:seconds]`` makes :func:`checkpoint_phase` sleep at that phase
(``build``, ``tracker``, ``figures``, ``analyses``, ``final``, ``finish``) after printing
``mlpx: test pause at <phase>``, so tests can signal a real process in a known phase.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PHASES = ("build", "tracker", "figures", "analyses", "final", "finish")


class Killed(BaseException):
    """A signal ended the run (a ``BaseException``, so ``except Exception`` in analysis or
    plotting code does not swallow it). ``signum``: the signal; ``phase``: where."""

    def __init__(self, signum: int, phase: str = "") -> None:
        self.signum = int(signum)
        self.phase = phase
        name = signal.Signals(self.signum).name
        where = f" during {phase}" if phase else ""
        super().__init__(f"stopped by signal {self.signum} ({name}){where}")

    @property
    def exit_code(self) -> int:
        """``128 + signum``: 130 for SIGINT, 143 for SIGTERM (the shell's convention)."""
        return 128 + self.signum


class SignalGuard:
    """The process's SIGINT/SIGTERM handler and the phase that decides what it does."""

    def __init__(self) -> None:
        self.mode = "immediate"
        self.phase = "start-up"
        self.stop: Any = None  # a train.StopRequest while in ``graceful``
        self.pending: int | None = None
        self.installed = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.mode == "graceful" and self.stop is not None:
            if self.stop.signum is not None:
                raise Killed(signum, "training (a second signal: stopped at once)")
            self.stop.signum = signum
            print(
                f"mlpx: signal {signum}: finishing the current step and writing a checkpoint "
                "(press Ctrl-C again to stop at once)",
                file=sys.stderr,
            )
            return
        if self.mode == "deferred" and self.pending is None:
            self.pending = signum
            print(
                f"mlpx: signal {signum}: stopping once {self.phase} is done (press Ctrl-C "
                "again to stop at once)",
                file=sys.stderr,
            )
            return
        raise Killed(signum, self.phase)

    def install(self) -> bool:
        """Install the handler (main thread only); False where signals cannot be caught."""
        if self.installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in SIGNALS:
            signal.signal(sig, self.handler)
        self.installed = True
        return True

    @contextmanager
    def section(self, mode: str, phase: str, stop: Any = None) -> Iterator[None]:
        """Run the block in ``mode`` (``graceful`` needs ``stop``); restore the previous
        mode after it. A signal deferred inside, or a stop request the block did not act
        on, raises :class:`Killed` at the end of the block (unless the block raised)."""
        saved = self.mode, self.phase, self.stop
        self.mode, self.phase, self.stop = mode, phase, stop
        try:
            yield
        finally:
            self.mode, self.phase, self.stop = saved
        if mode == "deferred" and self.pending is not None:
            signum, self.pending = self.pending, None
            raise Killed(signum, phase)
        if mode == "graceful" and stop is not None and stop.signum is not None:
            # the signal came after the last step (final checkpoint, test evaluation):
            # the loop ended normally, so stop here instead of going on to the figures
            raise Killed(stop.signum, f"{phase} (after its last step)")

    def enter(self, phase: str) -> None:
        """Name the phase now under way (for the messages) and honour the test pause."""
        self.phase = phase
        checkpoint_phase(phase)


GUARD = SignalGuard()


def checkpoint_phase(phase: str) -> None:
    """The test hook: sleep at ``phase`` when ``MLPX_TEST_PAUSE=<phase>[:seconds]``."""
    wanted = os.environ.get("MLPX_TEST_PAUSE", "")
    name, _, seconds = wanted.partition(":")
    if name != phase:
        return
    print(f"mlpx: test pause at {phase}", file=sys.stderr, flush=True)
    time.sleep(float(seconds or 60))

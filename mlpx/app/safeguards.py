"""Guards around a job: sweeps with no job, the store under ``hydra.job.chdir=true``, and one
config trained once when identical sweeps run at the same time.

* :func:`empty_sweeps`: ``-m trainer.seed=range(0)`` makes no job; Hydra would launch none and
  the sweep would leave an empty FINISHED parent run. It is refused before anything starts.
* :func:`anchor_store`: with ``hydra.job.chdir=true`` a job runs inside its output folder, so
  MLflow's default store (``sqlite:///<cwd>/mlflow.db``) and relative ``sqlite:///`` paths
  would silently move there. They are resolved against the folder ``mlpx`` was launched in.
* :class:`ConfigClaim`: a sweep job skips a config that already has a FINISHED run; two
  sweeps started together both found none and trained it twice. A job now holds an ``flock``
  on a file named after (store, config hash) while it looks and trains; the second waits,
  then finds the first one's FINISHED run and reuses it. Locks live in the machine's temporary
  folder, so this covers processes on one machine (jobs on other machines, e.g. SLURM nodes,
  still find each other's FINISHED runs, not RUNNING ones).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["ConfigClaim", "anchor_store", "empty_sweeps"]


def empty_sweeps(overrides: list[str]) -> list[str]:
    """The sweep overrides (``key=range(0)``, ``key=range(3,3)``) that give no value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    empty = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if not o.is_sweep_override():
            continue
        try:
            values = list(o.sweep_string_iterator())
        except Exception:  # interval(...) and other searches the sweeper samples from
            continue
        if not values:
            empty.append(o.input_line or o.get_key_element())
    return empty


def anchor_store(container: dict[str, Any], launch_dir: str) -> dict[str, Any]:
    """``container`` with ``logger.tracking_uri`` made absolute against ``launch_dir``: the
    default store (no URI, no ``MLFLOW_TRACKING_URI``) and relative ``sqlite:///`` paths."""
    logger = container.get("logger")
    if not isinstance(logger, Mapping) or logger.get("name", "mlflow") == "none":
        return container
    uri = logger.get("tracking_uri")
    if uri is None and os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return container
    from mlpx.tracking.store import resolve_tracking_uri, sqlite_path

    if uri is not None:
        path = sqlite_path(str(uri))
        if path is None or os.path.isabs(path):
            return container
    here = os.getcwd()
    try:
        os.chdir(launch_dir)
        resolved = resolve_tracking_uri(uri)
    finally:
        os.chdir(here)
    return {**container, "logger": {**logger, "tracking_uri": resolved}}


class ConfigClaim:
    """An exclusive ``flock`` on (store, config hash), held while a job looks for a FINISHED
    run of its config and trains it; released by :meth:`release` (or when the process ends)."""

    held: ClassVar[list[ConfigClaim]] = []  # claims of this process not released yet

    @classmethod
    def release_all(cls) -> None:
        """Release every claim of this process (a job that ended with an error)."""
        for claim in list(cls.held):
            claim.release()

    def __init__(self, uri: str, config_hash: str) -> None:
        key = hashlib.sha256(f"{uri}\n{config_hash}".encode()).hexdigest()[:32]
        folder = Path(tempfile.gettempdir()) / "mlpx-claims"
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{key}.lock"
        self.fd: int | None = None

    def acquire(self) -> ConfigClaim:
        """Take the lock; if another process holds it, say so and wait for it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no claim
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        ConfigClaim.held.append(self)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(
                "mlpx: another process is training this same config; waiting for its run",
                file=sys.stderr,
            )
            self._wait(fcntl)
        return self

    def _wait(self, fcntl: Any) -> None:
        """Poll for the lock; meanwhile this sweep's artifact helper may end runs whose
        claims this process still holds (:mod:`mlpx.app.offload`): take its confirmations,
        or two identical sweeps could each wait for a claim the other holds."""
        from mlpx.app.offload import current_worker

        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                worker = current_worker()
                if worker is not None:
                    worker.poll()
                time.sleep(0.1)

    def release(self) -> None:
        """Let the next job with this config go on (it will find this run)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self in ConfigClaim.held:
            ConfigClaim.held.remove(self)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

"""The garbage collector in a process that runs jobs for ``mlpx`` (issue 14).

A joblib worker (loky's) or a SLURM job imports mlpx, MLflow, scikit-learn, SciPy and
matplotlib: millions of objects that every full garbage collection traverses. Two such
collections cost a sweep's jobs without doing any good, measured on this 2-core machine:

- loky's worker collects after each job when psutil is not installed (~0.25 s);
- the interpreter collects once more when the process exits (~0.9 s, which the ``mlpx``
  process waits for before it can exit itself).

:func:`after_job` (called by :func:`mlpx.app.cli.main` after each job in such a process)
collects once after the process's first job, then freezes what is left (``gc.freeze()``:
modules and caches, all alive), so later collections traverse only what later jobs made; and
it freezes again at exit, as the ``mlpx`` process does, so the last collection is skipped.
Frozen objects are still freed when nothing refers to them; only cycles among them would stay.
"""

from __future__ import annotations

import atexit
import gc

__all__ = ["after_job", "launched_elsewhere"]

_settled = False


def launched_elsewhere() -> bool:
    """Whether this job is a sweep's job under a launcher that runs its jobs in other
    processes (joblib, submitit ...): any but Hydra's basic one, which runs them in ``mlpx``'s
    own process, one at a time."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", ""))
    return hc.mode == RunMode.MULTIRUN and not target.endswith(".BasicLauncher")


def after_job() -> None:
    """After a job in a process other than ``mlpx``'s own: the first time, ``gc.collect()``
    then ``gc.freeze()``, and ``gc.freeze()`` again at exit (see the module's docstring)."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
    atexit.register(gc.freeze)

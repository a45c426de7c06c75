"""The job side of an Optuna sweep: which trial a job is, reporting to it, pruning it.

The ``optuna`` sweeper (:mod:`mlpx.app.optuna_sweep`) launches each trial as a Hydra job with
the overrides ``++hydra.job.env_set.MLPX_OPTUNA_TRIAL=<number>:<trial id>``,
``..MLPX_OPTUNA_STUDY=<study name>`` and ``..MLPX_OPTUNA_STORAGE=<url>``, so the job (in
this process, a joblib worker or a SLURM node) finds its trial in the study's storage (an
in-memory study only in the sweeper's own process, through :data:`LOCAL_STUDIES`). Then:

- :meth:`TrialLink.on_eval` is the training loop's ``on_eval`` hook
  (:func:`mlpx.train.fit`): it reports ``trainer.objective`` at each evaluation
  (``trial.report(value, epoch)``) and returns True when the pruner prunes the trial;
- the job returns a :class:`TrialOutcome`: a float (any sweeper reads the objective) that
  also carries the job's MLflow run id and the epoch at which it was pruned.

Optuna is imported only when a job is a trial of such a sweep.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LOCAL_STUDIES",
    "STORAGE_ENV",
    "STUDY_ENV",
    "TRIAL_ENV",
    "TrialLink",
    "TrialOutcome",
    "current_trial",
]

TRIAL_ENV = "MLPX_OPTUNA_TRIAL"
STUDY_ENV = "MLPX_OPTUNA_STUDY"
STORAGE_ENV = "MLPX_OPTUNA_STORAGE"  # the storage URL as the sweeper opened it
#: In-memory studies of the sweeper running in this process, by name.
LOCAL_STUDIES: dict[str, Any] = {}


class TrialOutcome(float):
    """A job's objective (a float) with the MLflow run that produced it and, for a pruned
    trial, the epoch at which training stopped (``pruned_epoch``; None: not pruned)."""

    run_id: str | None
    pruned_epoch: int | None

    def __new__(
        cls, value: float, run_id: str | None = None, pruned_epoch: int | None = None
    ) -> TrialOutcome:
        out = super().__new__(cls, value)
        out.run_id, out.pruned_epoch = run_id, pruned_epoch
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # pickled back from joblib/submitit workers
        return (TrialOutcome, (float(self), self.run_id, self.pruned_epoch))


@dataclass
class TrialLink:
    """One trial of an Optuna study, seen from the job that runs it."""

    number: int
    trial_id: int
    study_name: str
    storage: str | None
    objective: str  # the metric reported at each evaluation (``trainer.objective``)
    pruner: Any = None  # the pruner's config (``hydra.sweeper.pruner``) or None
    pruned_epoch: int | None = None
    reported: int = 0
    _trial: Any = field(default=None, repr=False)
    _failed: bool = False

    def tags(self) -> dict[str, str]:
        """MLflow tags of the trial's run."""
        return {"optuna.trial_number": str(self.number), "optuna.study_name": self.study_name}

    def trial(self) -> Any:
        """The ``optuna.trial.Trial``, opened on first use (None when it cannot be)."""
        if self._trial is None and not self._failed:
            try:
                self._trial = _open_trial(self)
            except Exception as exc:  # reporting is a nicety: the run trains on
                self._failed = True
                print(
                    f"mlpx: warning: cannot report to Optuna trial {self.number} of study "
                    f"{self.study_name!r} ({type(exc).__name__}: {exc}); no pruning",
                    file=sys.stderr,
                )
        return self._trial

    def on_eval(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Report ``metrics[objective]`` at step ``epoch``; True when the trial is pruned."""
        value = metrics.get(self.objective)
        if value is None or not math.isfinite(float(value)):
            return False
        trial = self.trial()
        if trial is None:
            return False
        trial.report(float(value), epoch)
        self.reported += 1
        if self.pruner is not None and trial.should_prune():
            self.pruned_epoch = epoch
            print(
                f"mlpx: Optuna trial {self.number} pruned at epoch {epoch} "
                f"({self.objective}={float(value):.4f})",
                file=sys.stderr,
            )
            return True
        return False

    def note_run(self, run_id: str | None) -> None:
        """Record the job's MLflow run on the trial (user attribute ``mlflow_run_id``), so a
        relaunch can end it KILLED if this job is killed."""
        trial = self.trial() if run_id else None
        if trial is not None:
            try:
                trial.set_user_attr("mlflow_run_id", run_id)
            except Exception:  # a nicety: the sweeper records it again at the end
                pass

    def outcome(self, value: float, run_id: str | None) -> TrialOutcome:
        """What the job returns to the sweeper."""
        return TrialOutcome(value, run_id, self.pruned_epoch)

    def pruned_tags(self) -> dict[str, str]:
        """Tags of a pruned run (``pruned=true``, the epoch); empty when not pruned."""
        if self.pruned_epoch is None:
            return {}
        return {"pruned": "true", "pruned_epoch": str(self.pruned_epoch)}


def _open_trial(link: TrialLink) -> Any:
    import optuna

    from mlpx.app.optuna_study import make_pruner, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = LOCAL_STUDIES.get(link.study_name) if link.storage is None else None
    if study is None:
        if link.storage is None:
            raise RuntimeError("the study is in memory in another process (set a storage)")
        study = optuna.load_study(
            study_name=link.study_name,
            storage=open_storage(link.storage, heartbeat=None),
            sampler=optuna.samplers.RandomSampler(),
            pruner=make_pruner(link.pruner),
        )
    return optuna.trial.Trial(study, link.trial_id)


def current_trial(objective: str) -> TrialLink | None:
    """The trial this Hydra job runs (from the sweeper's environment variables), or None."""
    spec = os.environ.get(TRIAL_ENV, "")
    name = os.environ.get(STUDY_ENV, "")
    if not spec or not name:
        return None
    number, _, trial_id = spec.partition(":")
    storage = pruner = None
    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        sweeper = HydraConfig.get().sweeper
        storage = OmegaConf.select(sweeper, "storage", default=None)
        pruner = OmegaConf.select(sweeper, "pruner", default=None)
        pruner = OmegaConf.to_container(pruner, resolve=True) if pruner is not None else None
    except Exception:  # no Hydra context (a test): an in-memory study of this process
        pass
    storage = os.environ.get(STORAGE_ENV) or storage
    return TrialLink(
        int(number), int(trial_id), name, str(storage) if storage else None, objective, pruner
    )

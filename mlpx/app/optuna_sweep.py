"""The ``optuna`` Hydra sweeper (``hparams_search=mlp_optuna``) on Optuna >= 4.

The plugin class (``hydra_plugins.mlpx_optuna_sweeper``) hands its settings to
:class:`OptunaSweep`, which keeps hydra-optuna-sweeper 1.3's keys and search-space syntax
(:mod:`mlpx.app.optuna_space`) and adds:

- **persistent, resumable studies**: with ``storage`` (an RDB URL), launching the same
  command again continues the study up to ``n_trials`` in total (COMPLETE, PRUNED and other
  workers' RUNNING trials count; FAIL ones do not). Running trials send a heartbeat; a
  RUNNING trial left by a killed launch is marked FAIL once its heartbeat is
  ``heartbeat_grace`` seconds old;
- **pruning** (``pruner``): jobs report ``trainer.objective`` each evaluation
  (:mod:`mlpx.app.trial`); a pruned trial is told PRUNED;
- **several workers**: ``n_jobs`` trials per batch (ask/tell) through the launcher, and any
  number of mlpx processes with one storage and study name: the storage and study are
  created with retries on the creation race, and each worker's sampler is seeded
  ``seed + the number of its first trial`` (recorded on the study and the MLflow parent);
- **MLflow**: the sweep's parent run (:class:`mlpx.app.sweep.MlflowSweepCallback`) gets the
  study name, the storage (password masked), sampler, pruner and seed as tags and, at the
  end, the best trial and its run id; each trial's run is tagged with its number;
- **bad input** (:func:`check_sweep`): an unopenable storage, an unknown sampler or pruner,
  an existing study with the other direction, a search-space key not in the config: one
  line naming the key before any trial starts.
"""

from __future__ import annotations

import logging
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlpx.app.optuna_space import (
    grid_choices,
    missing_keys,
    space_from_overrides,
    suggest,
    to_override,
)
from mlpx.app.optuna_study import (
    Heartbeat,
    ParentRun,
    SweepConfigError,
    absolute_sqlite,
    default_study_name,
    make_pruner,
    make_sampler,
    mask_url,
    open_storage,
)
from mlpx.app.trial import LOCAL_STUDIES, STORAGE_ENV, STUDY_ENV, TRIAL_ENV, TrialOutcome

__all__ = ["OptunaSweep", "check_sweep", "fail_line"]

log = logging.getLogger(__name__)
SWEEPER_TARGET = "hydra_plugins.mlpx_optuna_sweeper.optuna_sweeper.OptunaSweeper"
#: Trial states that count towards ``n_trials`` (FAIL ones are run again).
COUNTED = ("COMPLETE", "PRUNED", "RUNNING", "WAITING")


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def _directions(direction: Any) -> list[str]:
    items = list(direction) if isinstance(direction, list | tuple) else [direction]
    out = [str(getattr(d, "name", d)).lower() for d in items]
    for d in out:
        if d not in ("minimize", "maximize"):
            raise SweepConfigError(f"hydra.sweeper.direction={d}: use minimize or maximize")
    return out


def _job_config(config: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])


# --------------------------------------------------------------------------------------------
# Checks before any trial
# --------------------------------------------------------------------------------------------


def _settings(config: DictConfig) -> dict[str, Any]:
    sw = config.hydra.sweeper
    return {
        k: OmegaConf.select(sw, k, default=None)
        for k in ("sampler", "direction", "storage", "study_name", "params", "pruner")
    }


def check_sweep(config: DictConfig, arguments: list[str] | None = None) -> dict[str, Any]:
    """Check an ``optuna`` sweep's settings against ``config`` (the multirun config, with
    ``hydra``); return what the sweep needs: ``space``, ``fixed``, ``directions``,
    ``study_name``, ``storage``, ``pruner``. Raises :class:`SweepConfigError`."""
    try:
        import optuna
    except ImportError:
        raise SweepConfigError(
            "hydra/sweeper=optuna needs optuna >= 4, which is not installed: "
            "pip install 'mlpx[sweep]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = _settings(config)
    for key in ("search_space", "custom_search_space"):
        if OmegaConf.select(config.hydra.sweeper, key, default=None) is not None:
            raise SweepConfigError(
                f"hydra.sweeper.{key} is not supported by mlpx's optuna sweeper: put the "
                "search space in hydra.sweeper.params (choice/range/interval/tag(log, ...))"
            )
    if arguments is None:
        arguments = list(config.hydra.overrides.task)
    params = {str(k): str(v) for k, v in (s["params"] or {}).items()}
    try:
        space, fixed = space_from_overrides([f"{k}={v}" for k, v in params.items()] + arguments)
    except Exception as exc:
        raise SweepConfigError(f"hydra.sweeper.params: {exc}") from None
    missing = missing_keys(_job_config(config), list(space))
    if missing:
        where = f"hydra.sweeper.params.{missing[0]}" if missing[0] in params else missing[0]
        raise SweepConfigError(
            f"{where} is not a key of the config: search keys that exist (see mlpx --cfg "
            "job), or +key to add one"
        )
    directions = _directions(s["direction"])
    pruner_conf = s["pruner"]
    pruner = make_pruner(pruner_conf)
    make_sampler(s["sampler"], grid=_grid(space) if _is_grid(s["sampler"]) else None)
    name = s["study_name"] or default_study_name(arguments, params)
    url = absolute_sqlite(str(s["storage"])) if s["storage"] else None
    storage = open_storage(url) if url else None
    if storage is not None:
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            study_id = None
        if study_id is not None:
            have = [d.name.lower() for d in storage.get_study_directions(study_id)]
            if have != directions:
                raise SweepConfigError(
                    f"hydra.sweeper.direction={','.join(directions)} but study {name!r} in "
                    f"{mask_url(url)} was created to {','.join(have)}: use another "
                    "hydra.sweeper.study_name or the study's direction"
                )
    return {
        "space": space,
        "fixed": fixed,
        "params": params,
        "directions": directions,
        "study_name": name,
        "storage_url": url,
        "pruner": pruner,
    }


def _is_grid(conf: Any) -> bool:
    return bool(conf) and str(conf.get("_target_", "")).endswith("GridSampler")


def _grid(space: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: grid_choices(name, dist) for name, dist in space.items()}


def fail_line(exc: SweepConfigError) -> None:
    """Print ``mlpx: error: ...`` and exit 2."""
    print("mlpx: error: " + " ".join(str(exc).split()), file=sys.stderr)
    raise SystemExit(2)


# --------------------------------------------------------------------------------------------
# The sweeper
# --------------------------------------------------------------------------------------------


class OptunaSweep:
    """What the ``optuna`` sweeper plugin does (see the module docstring)."""

    def __init__(
        self,
        sampler: Any = None,
        direction: Any = "minimize",
        storage: Any = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        search_space: Any = None,
        params: Any = None,
        custom_search_space: str | None = None,
        pruner: Any = None,
        heartbeat_interval: int = 10,
        heartbeat_grace: int = 30,
    ) -> None:
        del search_space, custom_search_space  # refused by check_sweep
        self.n_trials, self.n_jobs = int(n_trials), max(1, int(n_jobs))
        self.max_failure_rate = float(max_failure_rate)
        self.heartbeat = (max(1, int(heartbeat_interval)), max(2, int(heartbeat_grace)))
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.job_idx = 0
        self.checked_runs: set[str] = set()  # MLflow runs of FAIL trials, checked once

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # ------------------------------------------------------------------ the study
    def _study(self, plan: dict[str, Any]) -> tuple[Any, Any]:
        import optuna

        url, name = plan["storage_url"], plan["study_name"]
        storage = open_storage(url, self.heartbeat) if url else None
        placeholder = optuna.samplers.RandomSampler()
        for attempt in range(8):
            try:
                study = optuna.create_study(
                    storage=storage,
                    sampler=placeholder,
                    pruner=plan["pruner"] or optuna.pruners.NopPruner(),
                    study_name=name,
                    directions=plan["directions"],
                    load_if_exists=True,
                )
                break
            except Exception as exc:
                if attempt == 7 or not any(
                    w in str(exc).lower() for w in ("unique", "duplicate", "exists", "locked")
                ):
                    raise
                time.sleep(0.2 + random.random() * (attempt + 1))
        if storage is None:
            LOCAL_STUDIES[name] = study
        return study, storage

    def _counted(self, study: Any) -> list[Any]:
        from optuna.trial import TrialState

        states = tuple(TrialState[s] for s in COUNTED)
        return study.get_trials(deepcopy=False, states=states)

    # ------------------------------------------------------------------ the loop
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        try:
            plan = check_sweep(self.config, list(arguments))  # first: it says when optuna lacks
        except SweepConfigError as exc:
            fail_line(exc)
        from optuna.trial import TrialState

        sw = self.config.hydra.sweeper
        sampler_conf = OmegaConf.select(sw, "sampler", default=None)
        grid = _grid(plan["space"]) if _is_grid(sampler_conf) else None
        n_trials = self.n_trials
        if grid is not None:
            size = 1
            for values in grid.values():
                size *= len(values)
            n_trials = min(n_trials, size)
        study, storage = self._study(plan)
        name, url = plan["study_name"], plan["storage_url"]
        fixed = {k: v for k, v in plan["fixed"].items() if k not in plan["space"]}
        beats = Heartbeat(storage, self.heartbeat[0]) if storage is not None else None
        seed: int | None = None
        parent = ParentRun(self.config)
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
        by_trial = url is not None and subdir == "${hydra.job.num}"
        if storage is not None:
            self._fail_stale(study, parent)
        print(
            f"mlpx: Optuna study {name!r} in {mask_url(url)}: "
            f"{len(self._counted(study))}/{n_trials} trials done or running",
            file=sys.stderr,
        )
        inflight: list[Any] = []
        try:
            while True:
                if storage is not None:
                    self._fail_stale(study, parent)
                left = n_trials - len(self._counted(study))
                if left <= 0:
                    break
                trials = []
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "heartbeat ... with Study.optimize"
                    for _ in range(min(self.n_jobs, left)):
                        trial = study.ask()
                        if seed is None:  # this worker's sampler: seed + its first trial
                            offset = trial.number
                            study.sampler = make_sampler(sampler_conf, offset, grid, note=True)
                            seed = _seed(sampler_conf, offset)
                            study.set_user_attr(f"mlpx.worker_seed.{offset}", seed)
                            parent.tags(study, plan, seed)
                        trials.append(trial)
                if beats is not None:
                    beats.add(trials)
                asked, trials = trials, self._drop_surplus(study, trials, n_trials)
                if not trials:
                    break
                inflight = trials
                overrides = []
                for trial in trials:
                    values = {k: suggest(trial, k, d) for k, d in plan["space"].items()}
                    for k, v in fixed.items():
                        trial.set_user_attr(k, v)
                    env = [
                        to_override(
                            f"++hydra.job.env_set.{TRIAL_ENV}", f"{trial.number}:{trial._trial_id}"
                        ),
                        to_override(f"++hydra.job.env_set.{STUDY_ENV}", name),
                    ]
                    if url:
                        env.append(to_override(f"++hydra.job.env_set.{STORAGE_ENV}", url))
                    if by_trial:  # workers sharing a sweep folder never share a job folder
                        env.append(f"hydra.sweep.subdir=trial_{trial.number}")
                    job = [to_override(k, v) for k, v in values.items()]
                    job += [f"{k}={v}" for k, v in fixed.items()]
                    overrides.append(tuple(job + env))
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
                self.job_idx += len(returns)
                failures = self._tell(study, trials, returns, len(plan["directions"]))
                inflight = []
                if beats is not None:
                    beats.remove(asked)
                if failures and failures / len(returns) > self.max_failure_rate:
                    for ret in returns:
                        _ = ret.return_value  # raises the job's own error
        except BaseException:  # Ctrl-C, a scheduler's SIGTERM, a job's error: no RUNNING
            for trial in inflight:  # trial left behind (their runs end KILLED/FAILED)
                try:
                    study.tell(trial, state=TrialState.FAIL)
                except Exception:
                    pass
            raise
        finally:
            if beats is not None:
                beats.stop()
        return self._finish(study, plan, parent, TrialState)

    def _fail_stale(self, study: Any, parent: ParentRun) -> None:
        """Mark FAIL the RUNNING trials whose heartbeat stopped (a killed launch or worker)
        and end their MLflow runs KILLED (the job noted its run id on the trial)."""
        import optuna
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning
            optuna.storages.fail_stale_trials(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            run_id = t.user_attrs.get("mlflow_run_id")
            if run_id and run_id not in self.checked_runs:
                self.checked_runs.add(run_id)
                parent.kill_run(run_id, f"Optuna trial {t.number} was interrupted")

    def _drop_surplus(self, study: Any, trials: list[Any], n_trials: int) -> list[Any]:
        """Trials asked beyond ``n_trials`` (another worker asked at the same time) are told
        FAIL at once (user attribute ``mlpx.surplus``), so the study stops at ``n_trials``."""
        from optuna.trial import TrialState

        numbers = sorted(t.number for t in self._counted(study))
        allowed = set(numbers[:n_trials])
        keep = []
        for trial in trials:
            if trial.number in allowed:
                keep.append(trial)
            else:
                trial.set_user_attr("mlpx.surplus", True)
                study.tell(trial, state=TrialState.FAIL)
        return keep

    def _tell(self, study: Any, trials: list[Any], returns: list[Any], n_obj: int) -> int:
        from optuna.trial import TrialState

        failures = 0
        for trial, ret in zip(trials, returns, strict=True):
            try:
                value = ret.return_value
            except Exception as exc:
                log.warning("trial %s failed: %s", trial.number, exc)
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                continue
            if isinstance(value, TrialOutcome):
                if value.run_id:
                    trial.set_user_attr("mlflow_run_id", value.run_id)
                if value.pruned_epoch is not None:
                    trial.set_user_attr("pruned_epoch", value.pruned_epoch)
                    study.tell(trial, state=TrialState.PRUNED)
                    continue
            try:
                values = [float(v) for v in value] if n_obj > 1 else [float(value)]
            except (TypeError, ValueError):
                log.warning("trial %s returned %r, not a number", trial.number, value)
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                continue
            study.tell(trial, values=values)
        return failures

    def _finish(self, study: Any, plan: dict[str, Any], parent: ParentRun, states: Any) -> Any:
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == states.COMPLETE]
        pruned = [t for t in trials if t.state == states.PRUNED]
        failed = [t for t in trials if t.state == states.FAIL]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": plan["study_name"],
            "storage": mask_url(plan["storage_url"]),
            "n_complete": len(done),
            "n_pruned": len(pruned),
            "n_failed": len(failed),
        }
        best = None
        if done and len(plan["directions"]) == 1:
            best = study.best_trial
            results.update(
                best_params=dict(best.params),
                best_value=best.value,
                best_trial=best.number,
                best_run_id=best.user_attrs.get("mlflow_run_id"),
            )
        elif done:
            results["solutions"] = [
                {"params": dict(t.params), "values": list(t.values)} for t in study.best_trials
            ]
        assert self.config is not None
        out = Path(str(self.config.hydra.sweep.dir))
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), out / "optimization_results.yaml")
        print(
            f"mlpx: Optuna study {plan['study_name']!r}: {len(done)} complete, "
            f"{len(pruned)} pruned, {len(failed)} failed"
            + (f"; best trial {best.number}: {best.value:.4f} {best.params}" if best else ""),
            file=sys.stderr,
        )
        parent.finish(results)
        return results


def _seed(conf: Any, offset: int) -> int | None:
    seed = OmegaConf.select(conf, "seed", default=None) if conf is not None else None
    return None if seed is None else int(seed) + offset

"""Optuna studies for mlpx: storages, samplers, pruners, heartbeats, the MLflow parent.

The pieces :mod:`mlpx.app.optuna_sweep` (the sweeper) and :mod:`mlpx.app.trial` (its jobs)
share. Optuna, SQLAlchemy and MLflow are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import threading
import time
import warnings
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlpx.app.warn import first_line, warn

__all__ = [
    "PRESET_ARGS",
    "Heartbeat",
    "ParentRun",
    "SweepConfigError",
    "absolute_sqlite",
    "default_study_name",
    "make_pruner",
    "make_sampler",
    "mask_url",
    "open_storage",
]


class SweepConfigError(ValueError):
    """A sweeper setting that cannot work; the message names the key."""


def mask_url(url: str | None) -> str:
    """``url`` with its credentials replaced by ``***`` (:func:`mlpx.redact.mask_secrets`, the
    one masking of every printed line and MLflow record); ``memory`` for no storage."""
    if not url:
        return "memory"
    from mlpx.redact import mask_secrets

    return mask_secrets(url)


def absolute_sqlite(url: str | None) -> str | None:
    """A relative SQLite URL (``sqlite:///optuna.db``) made absolute from the current folder,
    so jobs in other folders or on other machines open the same file; others unchanged."""
    if not url or not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    path = url[len("sqlite:///") :]
    if not path or path.startswith(":memory:"):
        return url
    from pathlib import Path

    return "sqlite:///" + str(Path(path).resolve())


def open_storage(url: str, heartbeat: tuple[int, int] | None = None, attempts: int = 8) -> Any:
    """An ``optuna.storages.RDBStorage`` for ``url``; ``heartbeat`` = (interval, grace) s.

    Workers that start together race to create the tables: a failure that looks like that
    race (a table or row that already exists) is retried after a short random sleep. Any
    other failure raises :class:`SweepConfigError` naming ``hydra.sweeper.storage``.
    """
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    if heartbeat is not None:
        kwargs["heartbeat_interval"], kwargs["grace_period"] = heartbeat
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval: ExperimentalWarning
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as exc:
            text = str(exc).lower()
            racing = any(w in text for w in ("already exists", "unique", "duplicate", "locked"))
            if racing and attempt < attempts - 1:
                time.sleep(0.2 + random.random() * (attempt + 1))
                continue
            raise SweepConfigError(
                f"hydra.sweeper.storage={mask_url(url)} cannot be opened "
                f"({type(exc).__name__}: {first_line(exc, 200)}); give a reachable database URL "
                "(sqlite:///optuna.db, postgresql+psycopg://user:pw@host/db) or null"
            ) from None
    raise AssertionError("unreachable")


def _instantiate(conf: Any, key: str, **extra: Any) -> Any:
    from hydra.utils import instantiate

    target = conf.get("_target_") if isinstance(conf, dict) else None
    try:
        return instantiate(conf, **extra)
    except Exception as exc:
        cause = exc.__cause__ or exc
        kind = key.rsplit(".", 1)[-1]
        why = (str(cause).strip().splitlines() or [""])[0][:200]
        raise SweepConfigError(
            f"{key}._target_={target} is not a usable Optuna {kind} "
            f"({type(cause).__name__}: {why}); "
            f"give a class of optuna.{kind}s (e.g. optuna.{kind}s."
            f"{'MedianPruner' if kind == 'pruner' else 'TPESampler'}) and its arguments"
        ) from None


def make_pruner(conf: Any) -> Any:
    """The pruner of ``hydra.sweeper.pruner`` (a plain dict or DictConfig), None for null."""
    if conf is None:
        return None
    if isinstance(conf, DictConfig):
        conf = OmegaConf.to_container(conf, resolve=True)
    pruner = _instantiate(dict(conf), "hydra.sweeper.pruner")
    import optuna

    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise SweepConfigError(
            f"hydra.sweeper.pruner._target_={conf.get('_target_')} is not an optuna.pruners "
            "class (e.g. optuna.pruners.MedianPruner)"
        )
    return pruner


#: Arguments of the sampler presets: left out (with a note) for a sampler that takes none of
#: them, so ``hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler`` works on top of
#: a search file written for TPE. Any other unknown argument is an error.
PRESET_ARGS = frozenset(
    {
        "n_startup_trials",
        "n_ei_candidates",
        "multivariate",
        "constant_liar",
        "sigma0",
        "consider_pruned_trials",
        "population_size",
        "crossover_prob",
        "swapping_prob",
        "qmc_type",
        "scramble",
    }
)


def make_sampler(
    conf: Any, offset: int = 0, grid: dict[str, list[Any]] | None = None, note: bool = False
) -> Any:
    """The sampler of ``hydra.sweeper.sampler`` with ``seed + offset`` (when it has a seed);
    a GridSampler (``_partial_``) gets ``grid`` as its search space. Preset arguments the
    sampler does not take (``PRESET_ARGS``) are left out (a line says so when ``note``)."""
    if isinstance(conf, DictConfig):
        conf = OmegaConf.to_container(conf, resolve=True)
    conf = dict(conf or {"_target_": "optuna.samplers.TPESampler"})
    try:
        import inspect

        from hydra.utils import get_class

        takes = inspect.signature(get_class(str(conf.get("_target_")))).parameters
    except Exception:  # an unknown class: _instantiate below names it
        takes = None
    if takes is not None and not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
        dropped = sorted(k for k in conf if k in PRESET_ARGS and k not in takes)
        for key in dropped:
            del conf[key]
        if dropped and note:
            print(
                f"mlpx: note: {conf['_target_'].rsplit('.', 1)[-1]} takes no "
                f"{', '.join(dropped)} (hydra.sweeper.sampler): left out",
                file=sys.stderr,
            )
    if conf.get("seed") is not None:
        conf["seed"] = int(conf["seed"]) + offset
    sampler = _instantiate(conf, "hydra.sweeper.sampler")
    import functools

    import optuna

    if isinstance(sampler, functools.partial):
        sampler = sampler(grid or {})
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SweepConfigError(
            f"hydra.sweeper.sampler._target_={conf.get('_target_')} is not an optuna.samplers "
            "class (e.g. optuna.samplers.TPESampler)"
        )
    return sampler


def _excluded(key: str) -> bool:
    from mlpx.app.sweep import HASH_EXCLUDE

    return any(key == p or key.startswith(p + ".") for p in HASH_EXCLUDE)


def default_study_name(task_overrides: list[str], params: dict[str, str]) -> str:
    """``mlpx_`` + 12 hex digits of the command's overrides (less those that do not change
    training: ``logger.*``, ``sweep.*`` ...) and the search space: the same command, the same
    study; ``n_trials``, ``n_jobs``, the storage and the launcher do not count."""
    task = sorted(o for o in task_overrides if not _excluded(o.split("=", 1)[0].lstrip("+~")))
    text = json.dumps({"task": task, "params": params}, sort_keys=True)
    return "mlpx_" + hashlib.sha256(text.encode()).hexdigest()[:12]


class Heartbeat:
    """A daemon thread that records a heartbeat for this worker's running trials."""

    def __init__(self, storage: Any, interval: int) -> None:
        self.storage, self.interval = storage, interval
        self.ids: set[int] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="optuna-heartbeat")
        self.thread.start()

    def add(self, trials: list[Any]) -> None:
        with self.lock:
            self.ids |= {t._trial_id for t in trials}
        self._beat()

    def remove(self, trials: list[Any]) -> None:
        with self.lock:
            self.ids -= {t._trial_id for t in trials}

    def _beat(self) -> None:
        with self.lock:
            ids = list(self.ids)
        for trial_id in ids:
            try:
                self.storage.record_heartbeat(trial_id)
            except Exception:
                pass

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        self.done.set()


class ParentRun:
    """The sweep's MLflow parent run (from the sweep folder), when there is one."""

    def __init__(self, config: DictConfig) -> None:
        from mlpx.app.sweep import read_sweep_info

        info = read_sweep_info(str(config.hydra.sweep.dir))
        self.uri = info.get("tracking_uri")
        self.run_id = info.get("parent_run_id")

    def _set(self, tags: dict[str, Any]) -> None:
        if not self.run_id:
            return
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            for key, value in tags.items():
                client.set_tag(self.run_id, key, "" if value is None else str(value)[:5000])
        except Exception as exc:
            warn("tag the sweep's parent run", exc)

    def kill_run(self, run_id: str, why: str) -> None:
        """End run ``run_id`` KILLED (tag ``error``) when it is still RUNNING."""
        if not self.uri:
            return
        try:
            from mlflow.tracking import MlflowClient

            from mlpx.tracking.store import kill_if_running

            kill_if_running(MlflowClient(tracking_uri=self.uri), run_id, why)
        except Exception as exc:
            warn(f"end run {run_id}", exc)

    def tags(self, study: Any, plan: dict[str, Any], seed: int | None) -> None:
        pruner = plan["pruner"]
        self._set(
            {
                "optuna.study_name": plan["study_name"],
                "optuna.storage": mask_url(plan["storage_url"]),
                "optuna.sampler": type(study.sampler).__name__,
                "optuna.sampler_seed": seed,
                "optuna.pruner": type(pruner).__name__ if pruner is not None else "none",
                "optuna.direction": ",".join(plan["directions"]),
            }
        )

    def finish(self, results: dict[str, Any]) -> None:
        tags = {f"optuna.n_{k}": results[f"n_{k}"] for k in ("complete", "pruned", "failed")}
        if "best_trial" in results:
            tags.update(
                {
                    "optuna.best_trial": results["best_trial"],
                    "optuna.best_value": results["best_value"],
                    "optuna.best_run_id": results.get("best_run_id") or "",
                }
            )
        self._set(tags)

# ruff: noqa: UP006, UP045 - OmegaConf reads these annotations (Optional, List) at import
"""Configs of the ``optuna`` sweeper: the official hydra-optuna-sweeper 1.3 keys plus
``pruner`` (an ``optuna.pruners`` class; null: no pruning) and the heartbeat that marks the
trials of a killed launch FAIL.

``hydra/sweeper/sampler=tpe|random|cmaes|nsgaii|qmc|gp|grid`` and
``hydra/sweeper/pruner=median|percentile|successive_halving|hyperband|threshold|nop`` pick
a preset; any ``_target_`` class with its arguments works as well.

No ``from __future__ import annotations`` here: Hydra imports plugin files without
registering them in ``sys.modules``, where dataclasses look string annotations up.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, List, Optional  # noqa: UP035

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConfig:
    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    """TPE (the arguments Optuna 4.9 has not deprecated); ``constant_liar`` helps several
    workers or ``n_jobs`` > 1 not to propose the same region at once."""

    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    constant_liar: bool = False


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    consider_pruned_trials: bool = False


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = True


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10


@dataclass
class GridSamplerConfig(SamplerConfig):
    """The grid is ``params`` (choice/range sweeps), filled in by the sweeper."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: Optional[int] = None


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class MedianPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ThresholdPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class NopPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.mlpx_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    #: the sweeper builds the sampler and pruner itself (per worker seed, one-line errors)
    _recursive_: bool = False
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    #: an ``optuna.samplers`` class and its arguments; its ``seed`` is offset per worker
    sampler: Any = MISSING
    #: minimize or maximize (or a list of them for several objectives)
    direction: Any = "minimize"
    #: an RDB URL (sqlite:///optuna.db, postgresql+psycopg://...): persistent, resumable,
    #: shared by workers; null: in memory, this process only
    storage: Any = None
    #: null: ``mlpx_`` + a hash of the command line's overrides and the search space
    study_name: Optional[str] = None
    #: trials of the study IN TOTAL (a relaunch or a second worker completes the same count)
    n_trials: int = 20
    #: trials asked for and launched together (in parallel with a parallel launcher)
    n_jobs: int = 1
    #: the share of failed trials in a batch above which the sweep stops (0: any failure)
    max_failure_rate: float = 1.0
    search_space: Any = None
    params: Any = None
    custom_search_space: Optional[str] = None
    #: an ``optuna.pruners`` class and its arguments; null: no pruning
    pruner: Any = None
    #: seconds between the heartbeats of running trials (persistent storage only); a RUNNING
    #: trial without one for ``heartbeat_grace`` seconds (a killed launch) is marked FAIL
    heartbeat_interval: int = 10
    heartbeat_grace: int = 30


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="mlpx")
# Sampler presets are plain dicts (not structured configs): a search file's sampler keys
# merge into any preset, and the sweeper leaves out those the chosen sampler does not take.
for name, node in {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "qmc": QMCSamplerConfig,
    "gp": GPSamplerConfig,
    "grid": GridSamplerConfig,
}.items():
    cs.store(group="hydra/sweeper/sampler", name=name, node=asdict(node()), provider="mlpx")
for name, node in {
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "threshold": ThresholdPrunerConfig,
    "nop": NopPrunerConfig,
}.items():
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="mlpx")

"""The ``optuna`` sweeper's class: Hydra instantiates it from ``hydra.sweeper``.

A thin shell: the work is in :class:`mlpx.app.optuna_sweep.OptunaSweep`, imported when the
sweeper is built (Hydra imports this module at every start-up to find its plugins).
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Optuna search over ``hydra.sweeper.params``, with pruning and persistent studies."""

    def __init__(self, **settings: Any) -> None:
        from mlpx.app.optuna_sweep import OptunaSweep

        self.sweeper = OptunaSweep(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)

"""mlpx's Hydra sweeper on Optuna >= 4 (``hydra/sweeper=optuna``), shipped with ``mlpx[sweep]``.

Hydra finds it by scanning the ``hydra_plugins`` namespace package: importing this package
registers the configs (:mod:`.config`) and the sweeper class (:mod:`.optuna_sweeper`); both
import Hydra only. Optuna and the sweep itself are in :mod:`mlpx.app.optuna_sweep`.
"""

"""The commands and their configuration (the top layer; DESIGN.md).

- ``cli``: the ``mlpx`` command, Hydra's edge: compose, run one job, exit with one line.
- ``config``: every config key declared once (check, default, doc) -> :class:`Settings`.
- ``build``: settings -> backend, data, network, optimizer, tracker (shared with experiments/).
- ``sweep``: Hydra callbacks: a multirun's MLflow parent run; resumable sweeps.
- ``summary``: the sweep table: rows, mean ± std over seeds, Markdown, CSV, figures (pure).
- ``report``: runs read from a store, the summary written on a parent; ``mlpx-report``.
- ``optuna_sweep`` (+ ``optuna_space``, ``optuna_study``): the ``optuna`` Hydra sweeper
  (plugin shell in ``hydra_plugins/mlpx_optuna_sweeper``); ``trial``: a job's Optuna trial
  (report, prune); ``plugins``: that plugin seen by Hydra from an editable install.

Hydra and OmegaConf are imported by ``cli``, ``sweep`` and the Optuna modules only.
"""

"""The commands and their configuration (the top layer; DESIGN.md).

- ``cli``: the ``mlpx`` command, Hydra's edge: compose, run one job, exit with one line.
- ``config``: every config key declared once (check, default, doc) -> :class:`Settings`.
- ``build``: settings -> backend, data, network, optimizer, tracker (shared with experiments/).
- ``sweep``: Hydra callbacks: a multirun's MLflow parent run; resumable sweeps.
- ``summary``: the sweep table: rows, mean ± std over seeds, Markdown, CSV, figures (pure).
- ``report``: runs read from a store, the summary written on a parent; ``mlpx-report``.

Hydra and OmegaConf are imported by ``cli`` and ``sweep`` only.
"""

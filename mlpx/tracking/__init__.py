"""Experiment tracking behind a small protocol: MLflow for real runs, memory or nothing for tests.

The training loop talks to a :class:`Tracker` and never to MLflow directly::

    tracker = MlflowTracker(None, "mlp-digits", "adam-lr0.01-w128x3-relu")
    tracker.log_params(flatten(cfg))
    tracker.log_metrics({"train/loss": 0.3, "train/accuracy": 0.91}, step=epoch)
    tracker.finish()          # or finish("FAILED", error=traceback_text)

The modules, one responsibility each:

- :mod:`mlpx.tracking.base`: the :class:`Tracker` protocol, :class:`NullTracker`,
  :class:`MemoryTracker`, :class:`TrackingError`, and the helpers that turn values into what
  MLflow stores (:func:`flatten`, :func:`sanitize_key` ...).
- :mod:`mlpx.tracking.store`: tracking URIs (:func:`resolve_tracking_uri`,
  :func:`check_tracking_uri`, :func:`sqlite_path`, :func:`uri_scheme`), retries of transient
  store errors (:func:`with_retry`, :func:`retries_for`), and the calls made once per store or
  sweep (:func:`prepare_store`, :func:`create_parent_run`, :func:`end_run`).
- :mod:`mlpx.tracking.mlflow`: :class:`MlflowTracker`, through MLflow's public client API,
  metric values written by :mod:`mlpx.tracking.sender`'s thread while training goes on.
- :mod:`mlpx.tracking.sqlite_direct`: the opt-in writer of metric values straight into a
  SQLite store's tables (``logger.direct_sqlite``), the one user of MLflow's internals.
- :mod:`mlpx.tracking.model`: a run's network as the MLflow model ``model`` (a pickle-free
  "models from code" pyfunc, :mod:`mlpx.tracking.served_model`, on raw features).
- :mod:`mlpx.tracking.datasets`: the dataset's splits as the run's inputs.
- :mod:`mlpx.tracking.ui`: the command that opens MLflow's UI on a store, the URLs of a run
  and of an experiment's runs table, and the tags that make MLflow's UI show it as model
  training.

``import mlpx.tracking`` is cheap: mlflow (3-6 s), requests and matplotlib are imported inside
the functions that need them,. Nothing here
imports hydra or omegaconf.
"""

from __future__ import annotations

from mlpx.tracking.base import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
    RUN_STATUSES,
    MemoryTracker,
    NullTracker,
    Tracker,
    TrackingError,
    flatten,
    sanitize_key,
)
from mlpx.tracking.mlflow import MlflowTracker
from mlpx.tracking.store import (
    check_tracking_uri,
    create_parent_run,
    end_run,
    is_transient,
    prepare_store,
    resolve_tracking_uri,
    retries_for,
    sqlite_path,
    uri_scheme,
    with_retry,
)

__all__ = [
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VAL_LENGTH",
    "MAX_TAG_VAL_LENGTH",
    "RUN_STATUSES",
    "MemoryTracker",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "TrackingError",
    "check_tracking_uri",
    "create_parent_run",
    "end_run",
    "flatten",
    "is_transient",
    "prepare_store",
    "resolve_tracking_uri",
    "retries_for",
    "sanitize_key",
    "sqlite_path",
    "uri_scheme",
    "with_retry",
]

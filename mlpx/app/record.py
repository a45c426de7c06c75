"""What a run records around training besides metrics: its description, dataset inputs,
model, system metrics, and the lines it prints at its end.

Called by :func:`mlpx.app.cli.run`::

    extras = start_record(settings, tracker, data, model, command)   # description, datasets,
                                                                       # system metrics (opt-in)
    result = fit(...)
    end_record(settings, tracker, data, model, result, command)       # description, model
    stop_system_metrics(extras)                                       # before tracker.finish
    print_where(settings, tracker)                                    # after it

Only an MLflow run (an :class:`mlpx.tracking.MlflowTracker`) gets the MLflow parts; with
``logger=none`` only the result line is printed. MLflow is imported inside the functions.
"""

from __future__ import annotations

import sys
from typing import Any

from mlpx.app.config import LOGGER, Settings
from mlpx.app.describe import reproduce_command, result_line, run_description, where_lines

__all__ = [
    "NOTE_TAG",
    "SEED_GROUP_TAG",
    "end_record",
    "group_tag",
    "print_where",
    "reproduce_command",
    "seed_group_hash",
    "start_record",
    "stop_system_metrics",
]

#: MLflow's run description (Markdown), shown on the run's page.
NOTE_TAG = "mlflow.note.content"
#: The config hash without ``trainer.seed``: the runs of one configuration over seeds.
SEED_GROUP_TAG = "mlpx.seed_group"


def seed_group_hash(resolved: dict[str, Any]) -> str:
    """:func:`mlpx.app.sweep.config_hash` of the config with ``trainer.seed`` left out: equal
    for the runs that differ only in their seed (tag :data:`SEED_GROUP_TAG`)."""
    from mlpx.app.sweep import config_hash

    trainer = {k: v for k, v in dict(resolved.get("trainer") or {}).items() if k != "seed"}
    return config_hash({**resolved, "trainer": trainer})


def group_tag(resolved: dict[str, Any]) -> dict[str, str]:
    """``{SEED_GROUP_TAG: seed_group_hash(resolved)}``, the run tag."""
    return {SEED_GROUP_TAG: seed_group_hash(resolved)}


def _is_mlflow(tracker: Any) -> bool:
    return bool(getattr(tracker, "run_id", None)) and hasattr(tracker, "tracking_uri")


def _warn(what: str, exc: BaseException) -> None:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(f"mlpx: warning: could not {what}: {text}", file=sys.stderr)


def start_record(
    settings: Settings, tracker: Any, data: Any, model: Any, command: str
) -> dict[str, Any]:
    """At the start of a run: the description (without a result yet), the dataset inputs
    and, with ``logger.system_metrics``, MLflow's system metrics monitor. Returns what
    :func:`stop_system_metrics` needs. Failures are warnings: the run goes on."""
    extras: dict[str, Any] = {}
    if not _is_mlflow(tracker):
        return extras
    tracker.set_tags(
        {NOTE_TAG: run_description(settings, data, model, None, command, tracker.run_id)}
    )
    from mlflow.tracking import MlflowClient

    from mlpx.tracking.datasets import log_dataset_inputs

    try:
        log_dataset_inputs(MlflowClient(tracker.tracking_uri), tracker.run_id, data)
    except Exception as exc:
        _warn("log the dataset as the run's input", exc)
    if settings.logger.system_metrics:
        extras["monitor"] = start_system_metrics(tracker.tracking_uri, tracker.run_id)
    return extras


def start_system_metrics(tracking_uri: str, run_id: str, interval: float = 2.0) -> Any:
    """MLflow's own system metrics monitor on run ``run_id`` (``system/cpu_utilization_
    percentage``, ``system/system_memory_usage_megabytes``, ..., GPU ones where a GPU is
    visible), sampling every ``interval`` seconds (``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``
    overrides it). Raises ValueError when psutil, which it needs, is missing."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise ValueError(
            "logger.system_metrics=true needs psutil (MLflow's system metrics read it): "
            "pip install psutil, or set logger.system_metrics=false"
        ) from None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, tracking_uri=tracking_uri)
    monitor.start()
    return monitor


def stop_system_metrics(extras: dict[str, Any]) -> None:
    """Stop the monitor of :func:`start_record`, if any (its last samples are logged)."""
    monitor = extras.pop("monitor", None)
    if monitor is not None:
        try:
            monitor.finish()
        except Exception as exc:
            _warn("stop the system metrics monitor", exc)


def run_tail(tracker: Any) -> Any:
    """A :class:`mlpx.app.offload.RunTail` for ``tracker``'s run when this process's sweep
    has a helper process to end it (figures and model are then put there, not logged),
    else None."""
    from mlpx.app.offload import RunTail, current_worker

    if current_worker() is None or not hasattr(tracker, "hand_off"):
        return None
    return RunTail(tracker.tracking_uri, tracker.run_id)


def end_record(
    settings: Settings,
    tracker: Any,
    data: Any,
    model: Any,
    result: Any,
    command: str,
    tail: Any = None,
) -> str | None:
    """At the end of a finished run: the description with the result and (unless
    ``logger.log_model=false``) the model, registered as ``logger.register_model`` when
    set (put in ``tail``, a :class:`mlpx.app.offload.RunTail`, when given: the sweep's
    helper process logs it). Prints the result line. Returns the logged model's URI (or
    None)."""
    print(f"mlpx: done: {result_line(result, settings.trainer.objective)}", file=sys.stderr)
    if not _is_mlflow(tracker):
        return None
    tracker.set_tags(
        {NOTE_TAG: run_description(settings, data, model, result, command, tracker.run_id)}
    )
    lg = settings.logger
    if not lg.log_model:
        return None
    if tail is not None:
        from mlpx.app.offload import DataSummary, NetArrays

        tail.model = {
            "net": NetArrays.of(model),
            "data": DataSummary.of(data),
            "step": result.steps,
            "registered_model_name": lg.register_model,
        }
        return None
    return log_model_now(tracker, model, data, result.steps, lg.register_model)


def log_model_now(
    tracker: Any, net: Any, data: Any, step: int, registered_model_name: str | None
) -> str | None:
    """Log ``net`` as the run's model now (:func:`mlpx.tracking.model.log_model`) and tag the
    run ``mlpx.model_uri``; a failure is a warning (the run stands without the model)."""
    from mlpx.tracking.model import log_model

    try:
        tracker.flush()  # the test metrics in the store: MLflow links them to the model
        info = log_model(
            tracker.tracking_uri,
            tracker.run_id,
            net,
            data,
            step=step,
            registered_model_name=registered_model_name,
        )
    except Exception as exc:  # the run and its metrics stand without the model
        _warn("log the model", exc)
        return None
    tracker.set_tags({"mlpx.model_uri": info.model_uri})
    return str(info.model_uri)


def print_where(settings: Settings, tracker: Any, overlay: str | None = None) -> None:
    """The lines that name the run, its experiment and store, the UI command and URL;
    ``overlay``: the ``experiment=...`` option chosen, named when it changed the experiment."""
    if not _is_mlflow(tracker):
        return
    from mlpx.tracking.ui import run_url, ui_command

    uri = tracker.tracking_uri
    lines = where_lines(
        tracker.run_name,
        tracker.experiment_name,
        uri,
        ui_command(uri),
        run_url(uri, getattr(tracker, "experiment_id", None), tracker.run_id),
        default_experiment=LOGGER["experiment_name"].default,
        overlay=overlay,
    )
    for line in lines:
        print(f"mlpx: {line}", file=sys.stderr)

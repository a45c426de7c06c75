"""``trainer.resume``: find the checkpoint, check it against the config, choose the MLflow run.

A checkpoint carries the flattened config it was trained with (``counters.meta.config``,
the values as MLflow params store them; for older checkpoints the params of their run are
read instead). A resume whose config differs from it in anything that changes what the
checkpoint holds (any key but ``trainer.epochs`` and the keys :func:`mlpx.app.sweep.config_hash`
leaves out) is refused with one line naming the keys: the weights, optimizer state, data split
and dtype that training continues from are the checkpoint's, so a different ``optimizer.lr``,
``dataset.seed``, ``trainer.batch_size`` or ``backend.dtype`` would be recorded under params
that do not describe it.

Which run the resumed training is recorded in (:func:`plan_resume`):

* the checkpoint's own run, continued, when it is in the configured store, is not FINISHED and
  the config is the same (a run killed or interrupted): metric (key, step) pairs it already
  holds from the checkpoint's step on are not logged again (:mod:`mlpx.tracking.resume`);
* a new run, tagged ``mlpx.resumed_from_run=<old id>``, when that run is FINISHED (a finished
  run is never changed by a later command) or ``trainer.epochs`` changed (the old run's params
  and ``mlpx.config_hash`` describe the old number): it starts with the checkpoint's metric
  history, so it reads as one uninterrupted run of the new config;
* a new run when the checkpoint's run is not in this store.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpx.checkpoint import Checkpoint, CheckpointError, latest_checkpoint, load_checkpoint

__all__ = ["RESUMABLE_CHANGES", "ResumePlan", "config_params", "plan_resume", "resolve_resume"]

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: Keys a resume may change: training simply goes on to another epoch count (in a new run).
RESUMABLE_CHANGES = ("trainer.epochs",)
LINK_TAG = "mlpx.resumed_from_run"


@dataclass
class ResumePlan:
    """Where a resumed run is recorded: ``continue_run`` (that run, reopened) or a new run,
    ``linked_to`` the checkpoint's run when it is in the store."""

    continue_run: str | None = None
    linked_to: str | None = None


def config_params(container: Mapping[str, Any]) -> dict[str, str]:
    """The resolved config as MLflow params store it: dotted keys, string values."""
    from mlpx.tracking import flatten
    from mlpx.tracking.base import param_value, sanitize_key

    return {sanitize_key(k): param_value(v) for k, v in flatten(container).items()}


def _compared(key: str) -> bool:
    from mlpx.app.sweep import HASH_EXCLUDE

    return not any(key == p or key.startswith(p + ".") for p in HASH_EXCLUDE)


def config_changes(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` of the compared keys that differ (None: absent)."""
    keys = sorted(k for k in set(old) | set(new) if _compared(k))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def resolve_resume(value: str, settings: Any) -> Checkpoint:
    """``trainer.resume``: a checkpoint file, a folder of them, or an MLflow run id (its
    ``checkpoints/last.npz`` artifact, read from a temporary folder that is removed)."""
    path = Path(value).expanduser()
    if path.is_dir():
        found = latest_checkpoint(path) or latest_checkpoint(path / "checkpoints")
        if found is None:
            raise CheckpointError(f"trainer.resume: no step_*.npz checkpoint in {path}")
        return load_checkpoint(found)
    if path.exists() or not RUN_ID.match(value):
        return load_checkpoint(path)
    from mlpx.tracking import check_tracking_uri

    if settings.logger.name == "none":
        raise CheckpointError(
            f"trainer.resume={value} looks like an MLflow run id, but logger=none: give a "
            "checkpoint path or use logger=mlflow"
        )
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = check_tracking_uri(settings.logger.tracking_uri)  # TrackingError: a dead store
    with tempfile.TemporaryDirectory(prefix="mlpx-resume-") as tmp:
        try:
            local = MlflowClient(uri).download_artifacts(value, "checkpoints/last.npz", tmp)
        except (MlflowException, OSError) as exc:  # no such run, or no such artifact
            raise CheckpointError(
                f"trainer.resume={value}: no checkpoint of that run in the tracking store "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            ) from None
        try:
            checkpoint = load_checkpoint(local)
        except CheckpointError as exc:
            raise CheckpointError(str(exc).replace(str(local), f"runs:/{value}/last.npz")) from None
    checkpoint.path = Path(f"runs:/{value}/checkpoints/last.npz")
    checkpoint.meta.setdefault("run_id", value)
    return checkpoint


def _store_run(run_id: str | None, settings: Any) -> Any:
    """The MLflow run ``run_id`` if it is in the configured store, else None."""
    if not run_id or settings.logger.name == "none":
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import TrackingError, check_tracking_uri

    try:
        return MlflowClient(check_tracking_uri(settings.logger.tracking_uri)).get_run(run_id)
    except (MlflowException, TrackingError, OSError):
        return None  # another store, or deleted: the resumed run gets a new MLflow run


def plan_resume(checkpoint: Checkpoint, settings: Any, params: Mapping[str, str]) -> ResumePlan:
    """Check ``params`` (:func:`config_params` of this run's config) against what the
    checkpoint was trained with and choose the run to record in (see the module's doc).

    Raises CheckpointError (one line naming the differing keys) when the config changes
    anything but :data:`RESUMABLE_CHANGES`.
    """
    run = _store_run(checkpoint.meta.get("run_id"), settings)
    saved = checkpoint.meta.get("config")
    if not isinstance(saved, dict):  # an older checkpoint: its run's params, if reachable
        saved = dict(run.data.params) if run is not None else None
    changes = config_changes(saved, params) if saved is not None else {}
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_CHANGES}
    if refused:
        shown = ", ".join(f"{k}={old} (now {new})" for k, (old, new) in list(refused.items())[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise CheckpointError(
            f"trainer.resume={checkpoint.path} was trained with another config: {shown}{more}; "
            f"resume with the checkpoint's values (only {', '.join(RESUMABLE_CHANGES)} may "
            "change) or start a new run without trainer.resume"
        )
    if run is None:
        return ResumePlan()
    if run.info.status == "FINISHED" or changes:
        return ResumePlan(linked_to=run.info.run_id)
    return ResumePlan(continue_run=run.info.run_id)


def record_resume(tracker: Any, plan: ResumePlan, checkpoint: Checkpoint) -> Any:
    """The tracker the resumed training logs to: the continued run, wrapped so that it does
    not log (key, step) pairs again; or the new run, tagged with its origin and given the
    checkpoint's metric history."""
    from mlpx.tracking.resume import skip_logged

    step = checkpoint.state.step
    tags = {"mlpx.resumed": "true", "mlpx.resumed_from": str(checkpoint.path)}
    if plan.continue_run is not None:
        tracker.set_tags(tags)
        return skip_logged(tracker, step)
    if plan.linked_to is not None:
        tags[LINK_TAG] = plan.linked_to
    tracker.set_tags(tags)
    by_step: dict[int, dict[str, float]] = {}
    for key, points in checkpoint.state.history.items():
        for s, v in points:
            by_step.setdefault(int(s), {})[key] = v
    for s in sorted(by_step):
        tracker.log_metrics(by_step[s], step=s)
    return tracker

"""Multirun bookkeeping: one MLflow parent run per sweep, one child run per job.

Hydra calls :class:`MlflowSweepCallback` in the launching process. Before any job starts
it creates the store, the experiment and the parent run (so parallel jobs never race to
create SQLite tables) and writes the parent's id into the sweep folder, where every job,
in this process or another, reads it. When the sweep ends the parent run is closed with a
count of its children by status.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SWEEP_FILE = "mlflow_sweep.json"


def read_sweep_info(sweep_dir: str) -> dict[str, Any]:
    """``{"parent_run_id": ..., "swept_keys": [...]}`` written for this sweep, or ``{}``."""
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a sweep varies: ``["optimizer=sgd,adam", "dataset=iris"]`` -> ``["optimizer"]``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.get_key_element() for o in parsed if o.is_sweep_override()]


def job_suffix(sweep_dir: str, job_overrides: list[str]) -> str:
    """What this job of the sweep varies, e.g. ``optimizer=sgd,trainer.seed=1``."""
    keys = set(read_sweep_info(sweep_dir).get("swept_keys", []))
    return ",".join(o for o in job_overrides if o.split("=", 1)[0].lstrip("+~") in keys)


def _logger(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config.logger, resolve=True) if "logger" in config else {}


class MlflowSweepCallback(Callback):
    """Creates the sweep's parent run before the jobs and closes it after them."""

    def __init__(self) -> None:
        self.parent: tuple[str, str] | None = None  # (tracking uri, run id)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lg = _logger(config)
        if lg.get("name", "mlflow") != "mlflow":
            return
        from mlpx.tracking import (
            TrackingError,
            check_tracking_uri,
            create_parent_run,
            prepare_store,
        )

        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            uri = check_tracking_uri(lg.get("tracking_uri"))
            experiment = lg.get("experiment_name", "mlpx")
            prepare_store(uri, experiment)
        except TrackingError as exc:
            print(f"mlpx: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        overrides = list(config.hydra.overrides.task)
        name = "sweep " + (" ".join(overrides) if overrides else sweep_dir.name)
        run_id = create_parent_run(
            uri,
            experiment,
            name[:250],
            tags={"mlpx.sweep_dir": str(sweep_dir), "mlpx.sweep": "parent"},
        )
        info = {"parent_run_id": run_id, "swept_keys": swept_keys(overrides)}
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info) + "\n")
        self.parent = (uri, run_id)
        print(f"mlpx: sweep parent run {run_id} in experiment {experiment!r}", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent is None:
            return
        from mlpx.tracking import end_run

        uri, run_id = self.parent
        end_run(uri, run_id, "FINISHED")
        self.parent = None

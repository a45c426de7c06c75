"""A sweep job that fails before its MLflow run exists still leaves a FAILED child run
(issue 19, case 9; docs/sweeps.md: "its run ends FAILED with the message in the tag
``error``"), so the parent's summary counts it and shows the swept values that broke it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlpx.app.limits import bounded


def record_failed_job(cfg: DictConfig, error: str) -> str | None:
    """Create and end FAILED a child run of this sweep's parent for ``error``: the job's
    params as given (unchecked values included), the tags ``error`` and
    ``mlpx.invalid_config``. Returns its id; None with ``logger=none``, outside a sweep or
    when the store cannot take it (a warning line; the error line is printed already)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    from mlpx.app.summary import CONFIG_HASH_TAG
    from mlpx.app.sweep import config_hash, job_suffix, read_sweep_info

    hc = HydraConfig.get()
    info = read_sweep_info(hc.sweep.dir)
    if not info.get("parent_run_id") or OmegaConf.select(cfg, "logger.name") == "none":
        return None
    tags = {"mlpx.invalid_config": "true"}
    try:
        params: Any = OmegaConf.to_container(cfg, resolve=True)
        tags[CONFIG_HASH_TAG] = config_hash(params)  # a relaunch's retry replaces this row
    except OmegaConfBaseException:
        params = OmegaConf.to_container(cfg, resolve=False)
    suffix = job_suffix(hc.sweep.dir, list(hc.overrides.task))
    try:
        from mlpx.tracking import MlflowTracker, flatten

        tracker = MlflowTracker(
            info.get("tracking_uri"),
            str(info.get("experiment_name", "mlpx")),
            bounded(f"invalid config [{suffix}]" if suffix else "invalid config"),
            parent_run_id=info["parent_run_id"],
            tags=tags,
        )
        if isinstance(params, Mapping):
            tracker.log_params(flatten(params))
        tracker.finish("FAILED", error=error)
    except Exception as exc:  # the error line was printed: this record is a nicety
        print(
            f"mlpx: warning: could not record the failed job in MLflow: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
            file=sys.stderr,
        )
        return None
    return tracker.run_id

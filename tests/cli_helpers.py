"""Running the mlpx commands in a subprocess and reading their runs back from MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def mlpx_env(**extra: str) -> dict[str, str]:
    """This environment without MLFLOW_* settings, with a headless matplotlib."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_module(
    module: str, cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m <module> *args`` in ``cwd``; output captured, never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env or mlpx_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_mlpx(
    cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m mlpx *args`` (the ``mlpx`` command) in ``cwd``."""
    return run_module("mlpx", cwd, *args, timeout=timeout, env=env)


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri: str, experiment: str = "mlpx") -> list:
    """Every run of ``experiment`` in the store at ``uri`` ([] when there is none)."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])

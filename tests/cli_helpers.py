"""Running the mlpx commands in a subprocess and reading their runs back from MLflow."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def load_script(path: Path) -> Any:
    """The Python file ``path`` (a benchmark or tool script, not a package) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(backend: str, folder: Path) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1 with ``backend`` as its store and
    ``folder/mlartifacts`` as the artifact root (served by the server); yields its URL and
    stops it (the whole process group) at the end."""
    import requests

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(folder / "mlartifacts"),
            ],
            cwd=folder,
            env=mlpx_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, log_path.read_text()[-3000:]
                try:
                    if requests.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "mlflow server did not start in 180 s"
                time.sleep(1)
            yield base
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

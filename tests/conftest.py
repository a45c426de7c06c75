"""Shared test settings: the worst gradient errors met, printed in the summary."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

# The session's throwaway PostgreSQL server (a fixture), for tests/test_postgres.py.
from tests.postgres import postgres  # noqa: F401

# MLflow's progress bars (downloading a model's artifacts) start tqdm's monitor thread, which
# outlives them; the figure process (tests/test_figure_process.py) rightly forks only from a
# one-thread process, so its tests failed when they ran after such a test. tqdm's documented
# switch: no monitor thread.
if importlib.util.find_spec("tqdm") is not None:
    import tqdm

    tqdm.tqdm.monitor_interval = 0


class Worst(dict):
    """Oracle -> the largest error measured against it. An oracle that no test measured
    (its tests skipped or not selected) has no entry: reading it gives 0.0, so
    ``WORST[k] = max(WORST[k], err)`` works, but nothing is recorded until a test writes."""

    def __missing__(self, key: str) -> float:
        return 0.0


# Filled by tests/test_model.py: the largest error measured against each reference.
WORST: dict[str, float] = Worst()

#: oracle -> (how the summary names it, the figure's words, the module it needs).
ORACLES = {
    "finite_differences": ("finite differences", "worst relative error", None),
    "autograd": ("PyTorch autograd", "worst max abs difference", "torch"),
}


def summary_line(worst: dict[str, float]) -> str | None:
    """What the end of the run prints: a figure per oracle that was measured, and the
    oracles that were not (with why, when a library is missing); None when none was."""
    if not worst:
        return None
    measured, skipped = [], []
    for key, (name, figure, module) in ORACLES.items():
        if key in worst:
            measured.append(f"{figure} vs {name} {worst[key]:.2e}")
        elif module is not None and importlib.util.find_spec(module) is None:
            skipped.append(f"{name} skipped ({module} is not installed)")
        else:
            skipped.append(f"{name} not measured (its tests were skipped or not selected)")
    return "mlpx gradients: " + "; ".join(measured + skipped)


def pytest_terminal_summary(terminalreporter) -> None:
    line = summary_line(WORST)
    if line is not None:
        terminalreporter.write_line(line)


def pytest_configure(config) -> None:
    """Split datasets (mlpx/data_cache.py) and MLflow's schema head
    (mlpx/tracking/sqlite_store.py) cached in folders of this session, not in ~/.cache; the
    subprocesses the tests start inherit them. MLPX_DATA_CACHE / MLPX_CACHE_HOME set outside
    win."""
    import os
    import tempfile

    if "MLPX_DATA_CACHE" not in os.environ:
        os.environ["MLPX_DATA_CACHE"] = tempfile.mkdtemp(prefix="mlpx-data-cache-")
    if "MLPX_CACHE_HOME" not in os.environ:
        os.environ["MLPX_CACHE_HOME"] = tempfile.mkdtemp(prefix="mlpx-cache-")


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, complete MLflow SQLite store, made once per session by mlpx's own
    :func:`mlpx.tracking.sqlite_store.ensure_sqlite_store` (~2 s: MLflow's ~60 schema
    migrations)."""
    from mlpx.tracking.sqlite_store import ensure_sqlite_store

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    ensure_sqlite_store(path)
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, store_template: Path) -> str:
    """``sqlite:///<tmp_path>/mlflow.db``: a copy of the session's empty store, for the
    end-to-end tests that need a store of their own but not its creation (each mlpx process
    on a missing store spends ~2 s migrating it). Creating a store, fresh or racing, stays
    tested where it is the point: tests/test_reliability_store.py and the tests named
    ``..._fresh_store``."""
    dst = tmp_path / "mlflow.db"
    shutil.copyfile(store_template, dst)
    return f"sqlite:///{dst}"


@pytest.fixture(scope="session")
def shared_mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """One ``mlflow server`` on 127.0.0.1 (SQLite backend, proxied artifacts) for the tests
    that need a real server but not a fresh one: starting one takes 10-14 s here. Each test
    logs to an experiment of its own. Yields the server's URL."""
    from tests.cli_helpers import mlflow_server

    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder) as base:
        yield base

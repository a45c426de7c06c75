"""mlpx's grid sweeper (hydra_plugins/mlpx_grid_sweeper): Hydra's basic sweeper, validating one
job per distinct shape; and the plugin's visibility to Hydra's scan from an editable install."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

from hydra_plugins.mlpx_grid_sweeper.grid_sweeper import job_shape, representatives
from tests.cli_helpers import mlpx_env, run_mlpx


def test_job_shape_keeps_group_choices_and_drops_values():
    assert job_shape(["optimizer=adam", "optimizer.lr=0.01", "model.widths=[64]"]) == (
        "optimizer=adam",
        "optimizer.lr=<scalar>",
        "model.widths=<[>",
    )
    assert job_shape(["hydra/launcher=joblib", "+experiment=x", "~model.init"]) == (
        "hydra/launcher=joblib",
        "+experiment=x",
        "~model.init",
    )
    assert job_shape(["model.widths=null"]) != job_shape(["model.widths=[64]"])
    assert job_shape(["trainer.extra={a: 1}"]) == ("trainer.extra=<{>",)


def test_representatives_cover_every_shape_in_order():
    grid = [
        [f"optimizer={o}", f"optimizer.lr={lr}", f"trainer.seed={s}"]
        for o in ("sgd", "adam")
        for lr in (0.1, 0.01, 0.001)
        for s in (0, 1)
    ]
    reps = representatives(grid)
    assert reps == [grid[0], grid[6]]
    values_only = [[f"optimizer.lr={lr}", f"model.widths=[{w}]"] for lr in (1, 2) for w in (8, 9)]
    assert representatives(values_only) == [values_only[0]]
    assert representatives([]) == []


class _CountingLoader:
    def __init__(self) -> None:
        self.composed: list[list[str]] = []

    def load_sweep_config(self, master_config, sweep_overrides):  # Hydra's signature
        self.composed.append(list(sweep_overrides))


def test_validation_composes_only_the_representatives():
    # Hydra's plugin scan (run by other tests in this process) executes its core plugin modules
    # again, making a new BasicSweeper class: reload so GridSweeper derives from the current one.
    from hydra_plugins.mlpx_grid_sweeper import grid_sweeper

    sweeper = importlib.reload(grid_sweeper).GridSweeper(max_batch_size=None, params=None)
    loader = _CountingLoader()
    sweeper.config_loader = loader  # what validate_batch_is_legal falls back to
    sweeper.config = object()
    batch = [[f"optimizer.lr={lr}", f"trainer.seed={s}"] for lr in (1, 2, 3) for s in (0, 1)]
    batch += [["optimizer=sgd", "optimizer.lr=1", "trainer.seed=0"]]
    sweeper.validate_batch_is_legal(batch)
    assert loader.composed == [batch[0], batch[-1]]


def test_expose_plugins_makes_the_scan_list_the_grid_sweeper():
    # In a fresh interpreter: Hydra's scan lists hydra_plugins.__path__ with pkgutil.
    code = (
        "import pkgutil, hydra_plugins\n"
        "from mlpx.app.plugins import expose_plugins\n"
        "expose_plugins()\n"
        "print(sorted(m.name for m in pkgutil.walk_packages(hydra_plugins.__path__, "
        "'hydra_plugins.') if 'mlpx' in m.name))\n"
        "print(expose_plugins())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=mlpx_env(), check=True
    ).stdout.splitlines()
    assert "hydra_plugins.mlpx_grid_sweeper.grid_sweeper" in out[0]
    assert out[1] == "None"  # a second call adds nothing


def test_the_module_is_listed_after_expose_plugins_in_this_process():
    import hydra_plugins
    from mlpx.app.plugins import expose_plugins

    expose_plugins()
    names = {m.name for m in pkgutil.walk_packages(hydra_plugins.__path__, "hydra_plugins.")}
    assert "hydra_plugins.mlpx_grid_sweeper.grid_sweeper" in names


@pytest.mark.slow
def test_a_grid_runs_on_the_grid_sweeper_and_bad_groups_fail_before_any_job(tmp_path):
    ok = run_mlpx(
        tmp_path, "-m", "optimizer.lr=0.1,0.2", "trainer.epochs=1", "logger=none",
        "hydra.verbose=hydra",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "hydra/sweeper: grid" in ok.stdout + ok.stderr
    assert (ok.stdout + ok.stderr).count("mlpx: done") == 2
    bad = run_mlpx(tmp_path, "-m", "optimizer=sgd,nope", "trainer.epochs=1", "logger=none")
    assert bad.returncode == 2
    assert "optimizer has no option 'nope'" in bad.stderr
    assert "mlpx: done" not in bad.stdout + bad.stderr  # caught before the sgd job ran
    basic = run_mlpx(
        tmp_path, "-m", "hydra/sweeper=basic", "optimizer.lr=0.1,0.2", "trainer.epochs=1",
        "logger=none", "hydra.verbose=hydra",
    )  # fmt: skip
    assert basic.returncode == 0 and "hydra/sweeper: basic" in basic.stdout + basic.stderr

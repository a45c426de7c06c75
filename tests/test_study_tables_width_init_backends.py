"""Studies 4-6 (experiments/width_depth, initialisation, backends) at a tiny size.

Each study's overlay is composed with Hydra and trained by ``mlpx.app.cli.run`` into a SQLite
store in a temporary folder, then the study's ``make_table.py`` reads that store back and
draws its figures, so neither the configs nor the scripts can rot silently.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir

from mlpx.app.cli import config_dir, run

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


def load_script(study: str, name: str = "make_table") -> ModuleType:
    path = EXPERIMENTS / study / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"mlpx_study_{study}_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(uri: str, *overrides: str) -> float:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[*overrides, f"logger.tracking_uri={uri}", "trainer.progress=false"],
        )
    return run(cfg)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store holding a tiny version of each of the three studies."""
    folder = tmp_path_factory.mktemp("studies_width_init_backends")
    uri = f"sqlite:///{folder}/mlflow.db"
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)  # the runs' checkpoints/ folder goes here
    try:
        for seed in (0, 1):
            train(
                uri,
                "experiment=study_width",
                "dataset.n_samples=100",
                "model.depth=1",
                "model.width=4",
                "trainer.epochs=2",
                f"trainer.seed={seed}",
            )
        for init in ("glorot_uniform", "normal"):
            train(uri, "experiment=study_init", f"model.init={init}", "trainer.epochs=1")
        for dtype in ("float64", "float32"):
            train(uri, "experiment=study_backends", f"backend.dtype={dtype}", "trainer.epochs=2")
    finally:
        mp.undo()
    return uri


def test_width_depth_table_and_boundaries(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        load_script("width_depth").main(["--tracking-uri", store, "--figures", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "| dataset | depth | width 4 |" in out
    assert "| moons | 1 | 0." in out and " ± " in out  # two seeds: mean ± std
    assert (tmp_path / "boundaries_moons.png").stat().st_size < 300_000


def test_initialisation_table_and_figures(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script("initialisation")
    assert script.main(["--tracking-uri", store, "--figures", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| relu | glorot_uniform | 2." in out  # the initial loss is near ln 10
    assert "| relu | normal(0.01) | 2.303 |" in out  # tiny weights: exactly uniform predictions
    assert "‖dW_9‖" in out  # depth 8: nine weight matrices
    for name in ("grad_norms_at_init.png", "val_accuracy.png"):
        assert (tmp_path / name).stat().st_size < 300_000


def test_backends_table_and_figure(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_script("backends").main(["--tracking-uri", store, "--figures", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split("|")[3].strip(): line for line in out.splitlines() if line.startswith("| numpy")
    }
    assert set(lines) == {"float64", "float32"}
    assert "| 0.0e+00 |" in lines["float64"]
    rel = float(lines["float32"].split("|")[5])
    assert 0 < rel < 1e-4  # float32 against float64: round-off, not a different run
    assert (tmp_path / "parity_and_speed.png").stat().st_size < 300_000


@pytest.mark.parametrize("study", ["width_depth", "initialisation", "backends"])
def test_make_table_on_a_missing_store_says_what_to_run(study: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/none.db"
    with pytest.raises(SystemExit, match="run first: mlpx -m experiment=study_"):
        load_script(study).main(["--tracking-uri", uri])
    assert not (tmp_path / "none.db").exists()


def test_backends_parity_script_without_mlflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script("backends", "parity")
    out = tmp_path / "parity.json"
    specs = ["numpy:cpu:float64", "numpy:cpu:float32"]
    assert script.main(["--epochs", "2", "--out", str(out), *specs]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["spec"] for r in runs] == specs
    assert script.max_rel_diff(runs[1]["val_loss"], runs[0]["val_loss"]) < 1e-4
    saved = EXPERIMENTS / "backends" / "results" / "gpu_parity_h100.json"
    capsys.readouterr()
    assert script.main(["--table", str(saved)]) == 0
    assert "| torch:cuda:float64 |" in capsys.readouterr().out

"""Studies 1-3 of experiments/ at a tiny size, so that they cannot rot silently.

For linear_is_logistic, vanishing_gradients and optimizers: every ``mlpx -m`` command in
the study's README composes and validates (first value of each swept key); the study's
overlay trains a few one-epoch runs through ``mlpx.app.cli.run`` into a SQLite store in
tmp_path; the study's ``make_table.py`` reads that store back, prints its table and
writes its figures; and a missing store or experiment is refused with one line.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mlpx.app.cli import config_dir
from mlpx.app.config import settings_from_dict

ROOT = Path(__file__).resolve().parent.parent
CONF = Path(config_dir())
EXPERIMENTS = ROOT / "experiments"

# study folder -> (overlay, MLflow experiment, tiny runs: overrides of each, figures)
STUDIES = {
    "linear_is_logistic": (
        "study_linear",
        "study_linear",
        [["model.widths=[]"], ["model.widths=[8]"]],
        ["val_curves.png"],
    ),
    "vanishing_gradients": (
        "study_vanishing",
        "study_vanishing",
        [
            ["model.activation=sigmoid", "model.depth=2"],
            ["model.activation=relu", "model.depth=2", "optimizer=sgd"],
        ],
        ["grad_norms.png", "test_accuracy.png"],
    ),
    "optimizers": (
        "study_optimizers",
        "study_optimizers",
        [
            ["optimizer=sgd", "optimizer.lr=0.1"],
            ["optimizer=sgd", "optimizer.lr=0.01"],
            ["optimizer=adam", "dataset=moons", "dataset.n_samples=200"],
        ],
        ["learning_curves.png"],
    ),
}
TINY = ["trainer.epochs=1", "trainer.progress=false", "trainer.checkpoint_every=0"]


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def make_table(study: str) -> ModuleType:
    path = EXPERIMENTS / study / "make_table.py"
    spec = importlib.util.spec_from_file_location(f"make_table_{study}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_commands(study: str) -> list[list[str]]:
    """The overrides of every ``mlpx -m ...`` line of the study's README (no shell variables)."""
    text = (EXPERIMENTS / study / "README.md").read_text()
    text = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    commands = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("mlpx -m ") and "$" not in line:
            commands.append([a for a in shlex.split(line.split("#")[0])[1:] if a != "-m"])
    return commands


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override():
            out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        else:
            out.append(o.input_line)
    return [o for o in out if not o.startswith("hydra.")]


@pytest.mark.parametrize("study", list(STUDIES))
def test_readme_commands_compose_and_validate(study: str) -> None:
    commands = readme_commands(study)
    assert commands, f"experiments/{study}/README.md has no `mlpx -m` command"
    for command in commands:
        assert f"experiment={STUDIES[study][0]}" in command, command
        settings = settings_from_dict(
            OmegaConf.to_container(compose_cfg(first_of_each_sweep(command)), resolve=True)
        )
        assert settings.logger.experiment_name == STUDIES[study][1]


def test_overlays_are_what_the_studies_say() -> None:
    def settings(*overrides: str):
        return settings_from_dict(
            OmegaConf.to_container(compose_cfg(list(overrides)), resolve=True)
        )

    linear = settings("experiment=study_linear", "model.widths=[64,64]")
    assert linear.model.activations == ["linear"] * 3  # phi(a) = a in every layer
    assert linear.trainer.early_stopping.patience == 0  # last.npz = the tested weights
    vanishing = settings("experiment=study_vanishing", "model.depth=10")
    assert vanishing.model.widths == [64] * 10 and vanishing.model.init == "glorot_uniform"
    assert vanishing.trainer.log_every_n_steps == 1  # step 1 is the gradient at init
    optimizers = settings("experiment=study_optimizers", "optimizer=rmsprop")
    assert optimizers.model.widths == [128, 64] and optimizers.optimizer.name == "rmsprop"
    for study, (overlay, *_) in STUDIES.items():
        lines = (CONF / "experiment" / f"{overlay}.yaml").read_text().splitlines()
        assert lines[0] == "# @package _global_" and lines[1].startswith("# Study"), overlay
        assert f"experiments/{study}" in lines[1], overlay


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One SQLite store in which every study ran its tiny runs."""
    from mlpx.app.cli import run

    folder = tmp_path_factory.mktemp("studies")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # mlruns/ and checkpoints/ land here
        for name, (overlay, _, runs, _) in STUDIES.items():
            for overrides in runs:
                cfg = compose_cfg(
                    [f"experiment={overlay}", f"logger.tracking_uri={uri}", *TINY, *overrides]
                )
                objective = run(cfg)
                assert 0.0 <= objective <= 1.0, (name, overrides)
    yield uri, folder


@pytest.mark.parametrize("study", list(STUDIES))
def test_make_table_reads_the_study_back(
    study: str, store: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    uri, _ = store
    assert make_table(study).main(["--tracking-uri", uri, "--figures", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| ") >= len(STUDIES[study][2]), out
    for name in STUDIES[study][3]:
        figure = tmp_path / name
        assert figure.is_file() and figure.read_bytes()[:4] == b"\x89PNG", name
    if study == "linear_is_logistic":
        # The composed map is one 10x64 matrix with the network's predictions.
        assert "10x64 + bias" in out and "| 1/1 runs |" in out
        assert "LogisticRegression(C=inf)" in out
    if study == "vanishing_gradients":
        assert "| sigmoid | 2 | 3 |" in out and "| relu | 2 | 3 |" in out
        assert "from logged step [1]" in out
    if study == "optimizers":
        assert "**0.1: " in out or "**0.01: " in out  # one of the two sgd rates is chosen
        module = make_table(study)
        assert module.main(["--tracking-uri", uri, "--chosen"]) == 0
        chosen = capsys.readouterr().out.split("\n")
        assert "moons adam 0.001" in chosen and any(c.startswith("digits sgd 0.") for c in chosen)


@pytest.mark.parametrize("study", list(STUDIES))
def test_make_table_refuses_a_missing_store_or_experiment(
    study: str, store: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    module = make_table(study)
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert module.main(["--tracking-uri", missing, "--figures", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("make_table: error: no MLflow store at") and err.count("\n") == 1
    uri, _ = store
    assert module.main(["--tracking-uri", uri, "--experiment", "nope"]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("study", list(STUDIES))
def test_committed_figures_exist_and_are_small(study: str) -> None:
    folder = EXPERIMENTS / study
    assert (folder / "README.md").is_file()
    for name in STUDIES[study][3]:
        figure = folder / name
        assert figure.is_file(), figure
        assert figure.stat().st_size < 300_000, f"{figure} is {figure.stat().st_size} bytes"

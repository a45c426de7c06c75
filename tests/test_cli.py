"""The ``mlpx`` command end to end, read back from MLflow (slow: real subprocesses)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mlpx.fast import kernels
from tests.cli_helpers import client, mlpx_env, runs_of
from tests.cli_helpers import run_mlpx as mlpx

pytestmark = pytest.mark.slow

#: Runs without analyses, figures and model, where the test reads none of them (the default
#: run below records and checks everything). ``sqlite_store``: a copy of an empty store,
#: where creating it is not what the test checks (the default run creates its own).
LEAN = ("analysis=off", "logger.log_figures=false", "logger.log_model=false")


EPOCH_METRICS = ["train/loss", "train/accuracy", "val/loss", "val/accuracy"]


def test_default_run_reaches_95_percent_and_records_everything(tmp_path: Path) -> None:
    """No arguments: MLflow's default store in the launch folder, every metric and file."""
    proc = mlpx(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's own default, in the cwd
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = runs_of(uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "adam-lr0.001-w128x64-relu"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.widths"] == "[128, 64]"
    assert params["optimizer.lr"] == "0.001"
    assert params["dataset.name"] == "digits"
    assert params["trainer.batch_size"] == "32"
    assert tags["dataset"] == "digits" and tags["backend"] == "numpy"
    assert tags["dtype"] == "float64" and tags["mlpx.version"]
    assert tags["jit"] == str(kernels.available()).lower()  # backend.jit=auto
    assert metrics["test/accuracy"] >= 0.95
    c = client(uri)
    rid = run.info.run_id
    epochs = len(c.get_metric_history(rid, "epoch"))
    assert epochs >= 5
    for key in EPOCH_METRICS:
        assert len(c.get_metric_history(rid, key)) >= epochs, key
    steps = int(max(m.step for m in c.get_metric_history(rid, "epoch")))
    for key in ["grad_norm/layer_1", "grad_norm/layer_2", "grad_norm/layer_3", "grad_norm/global"]:
        history = c.get_metric_history(rid, key)
        assert len(history) == steps // 50, key  # every log_every_n_steps = 50 steps
        assert all(m.value > 0 for m in history)
    assert len(c.get_metric_history(rid, "test/loss")) == 1
    artifacts = {a.path for d in ("", "config", "figures") for a in c.list_artifacts(rid, d)}
    assert {
        "config/config.yaml",
        "config/overrides.yaml",
        "figures/learning_curves.png",
        "figures/grad_norms.png",
    } <= artifacts
    # analysis=default: health metrics at the gradient-norm cadence and the sanity checks;
    # the input-gradient analyses and the analysis figures only with analysis=full (below)
    figures = {a for a in artifacts if a.startswith("figures/")}
    assert figures == {"figures/learning_curves.png", "figures/grad_norms.png"}
    assert not any(k.startswith("adversarial/") for k in metrics)
    for key in ["weight_norm", "update_ratio", "delta_a_norm", "activation_mean", "dead_units"]:
        assert len(c.get_metric_history(rid, f"health/{key}/layer_1")) == steps // 50, key
    assert tags["sanity.initial_loss"] == "passed" and tags["sanity.overfit"] == "passed"
    assert not any(k.startswith("sanity") for k in metrics)  # tags, not ten metrics

    # analysis=full: every figure and the FGSM accuracies, as the default recorded before
    proc = mlpx(tmp_path, "analysis=full", "trainer.epochs=5", "logger.experiment_name=full")
    assert proc.returncode == 0, proc.stderr
    (run,) = runs_of(uri, "full")
    rid, metrics = run.info.run_id, run.data.metrics
    artifacts = {a.path for a in c.list_artifacts(rid, "figures")}
    assert ANALYSIS_FULL_ONLY <= artifacts
    fgsm = [metrics[f"adversarial/accuracy_eps_{e}"] for e in ("0", "0.05", "0.1", "0.2", "0.3")]
    assert fgsm == sorted(fgsm, reverse=True) and fgsm[0] == metrics["test/accuracy"]


ANALYSIS_FULL_ONLY = {
    "figures/grad_norm_heatmap.png",
    "figures/confusion_matrix.png",
    "figures/activation_histograms.png",
    "figures/saliency.png",
    "figures/adversarial.png",
    "figures/class_visualisation.png",
}


@pytest.mark.usefixtures("sqlite_store")
def test_gradcheck_mode_prints_the_table_and_logs_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = mlpx(tmp_path, "mode=gradcheck", f"logger.tracking_uri={uri}", "model.activation=tanh")
    assert proc.returncode == 0, proc.stderr
    assert "| 1 | delta_W |" in proc.stdout and "PASS" in proc.stdout
    (run,) = runs_of(uri)
    assert run.data.tags["mode"] == "gradcheck" and run.info.status == "FINISHED"
    assert run.data.metrics["gradcheck/max_rel_error"] < 1e-6
    strict = mlpx(tmp_path, "mode=gradcheck", "logger=none", "analysis.gradcheck.threshold=1e-15")
    assert strict.returncode == 2
    assert "gradient check failed" in strict.stderr


def test_tracking_uri_setting_and_overrides_in_the_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    proc = mlpx(
        tmp_path,
        f"logger.tracking_uri={uri}",
        "logger.experiment_name=smoke",
        "dataset=iris",
        "trainer.epochs=2",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        *LEAN,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
    (run,) = runs_of(uri, "smoke")
    assert run.info.run_name == "sgd-lr0.1-w128x64-relu"
    assert run.data.params["optimizer.name"] == "sgd"
    c = client(uri)
    overrides = c.download_artifacts(run.info.run_id, "config/overrides.yaml", str(tmp_path))
    assert "optimizer.lr=0.1" in Path(overrides).read_text()


@pytest.mark.usefixtures("sqlite_store")
def test_multirun_gives_one_parent_and_a_child_per_job(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = mlpx(
        tmp_path,
        "-m",
        f"logger.tracking_uri={uri}",
        "dataset=iris",
        "trainer.epochs=2",
        "optimizer=sgd,adam",
        *LEAN,
    )
    assert proc.returncode == 0, proc.stderr
    runs = runs_of(uri)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.data.params["optimizer.name"] for r in children} == {"sgd", "adam"}
    assert all(r.info.status == "FINISHED" for r in children)
    assert all("optimizer=" in r.info.run_name for r in children)  # the name says what varies


@pytest.mark.usefixtures("sqlite_store")
def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = mlpx(
        tmp_path,
        "-m",
        f"logger.tracking_uri={uri}",
        "dataset=iris",
        "trainer.epochs=3",
        "optimizer=sgd",
        "optimizer.lr=1e9,0.1",
        *LEAN,
    )
    assert proc.returncode == 0, proc.stderr
    assert "training diverged at epoch" in proc.stderr
    children = [r for r in runs_of(uri) if "mlflow.parentRunId" in r.data.tags]
    by_lr = {r.data.params["optimizer.lr"]: r for r in children}
    assert by_lr["1000000000.0"].info.status == "FAILED"
    assert by_lr["1000000000.0"].data.tags["diverged"] == "true"
    assert "diverged" in by_lr["1000000000.0"].data.tags["error"]
    assert by_lr["0.1"].info.status == "FINISHED"


BAD_OVERRIDES = [
    ("model.widths=[128,-3]", "model.widths[1] must be a positive integer, got -3"),
    ("model.depth=3", "model.widths clashes with model.depth/model.width"),
    ("model.activation=swish", "model.activation must be one of linear, sigmoid"),
    ("model.init=xavier", "model.init must be one of glorot_uniform"),
    ("optimizer.lr=-1", "optimizer.lr must be a positive finite number, got -1"),
    ("optimizer.betas=[0.9,1.5]", "optimizer.betas"),
    ("dataset.name=mnist", "dataset.name must be one of blobs"),
    ("dataset.val_size=0.9", "dataset.val_size + dataset.test_size must be < 1"),
    ("backend.dtype=float16", "backend.dtype must be one of float32, float64"),
    ("trainer.epochs=0", "trainer.epochs must be a positive integer, got 0"),
    ("trainer.batch_size=abc", "trainer.batch_size must be a positive integer, got 'abc'"),
    ("logger.name=wandb", "logger.name must be one of mlflow, none"),
    ("logger.tracking_uri=http://127.0.0.1:9", "http://127.0.0.1:9"),
    # Hydra's composition errors, caught by type (hydra.errors), exit 2 like mlpx's own
    ("optimizer=adamm", "optimizer=adamm: optimizer has no option 'adamm'; its options: adagrad"),
    ("trainer.epoch=5", "trainer.epoch is not a config key; did you mean trainer.epochs?"),
    ("trainer.foo=1", "trainer.foo is not a config key; the keys of trainer: batch_size,"),
    ("optimizer.momentum=0.9", "optimizer.momentum is not a key of the chosen optimizer: it "),
    ("+optimizer.momentum=0.9", "optimizer.momentum is not a hyper-parameter of adam (a "),
    ("optimizer=_schedule", "optimizer=_schedule: _schedule.yaml is shared by the options of"),
    ("model.widths=[1,", "cannot parse 'model.widths=[1,': "),
]


if importlib.util.find_spec("cupy") is None:  # found missing when the run builds the backend
    BAD_OVERRIDES.append(("backend=cupy", "backend 'cupy' needs CuPy: pip install"))


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES)
def test_bad_override_exits_with_one_line_and_no_run(
    tmp_path: Path, override: str, message: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = (
        [override]
        if override.startswith("logger.tracking_uri")
        else [
            f"logger.tracking_uri={uri}",
            override,
        ]
    )
    proc = mlpx(tmp_path, *args, timeout=60)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlpx: error:")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert "Traceback" not in proc.stderr
    if (tmp_path / "mlflow.db").exists():
        assert all(r.info.status != "RUNNING" for r in runs_of(uri))
        assert runs_of(uri) == []  # nothing was trained or logged


def test_help_lists_groups_quickly(tmp_path: Path) -> None:
    proc = mlpx(tmp_path, "--help", timeout=60)
    assert proc.returncode == 0
    for line in ["model:", "optimizer:", "nesterov", "gaussian_quantiles", "moons_small"]:
        assert line in proc.stdout
    proc = mlpx(tmp_path, "--cfg", "job", timeout=60)
    assert proc.returncode == 0 and "widths:" in proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["model=deep", "optimizer.lr=0.5", "-h"]])
def test_quick_help_is_hydras_help(tmp_path: Path, args: list[str]) -> None:
    """`mlpx --help` is composed without Hydra's help command: the same text as Hydra's."""
    import subprocess
    import sys

    quick = mlpx(tmp_path, *args, timeout=60)
    code = "import sys; from mlpx.app.cli import main; sys.argv[0] = 'mlpx'; main()"
    hydras = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=mlpx_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quick.returncode == hydras.returncode == 0, quick.stderr + hydras.stderr
    assert "deep" in quick.stdout and quick.stdout == hydras.stdout


USER_EXPERIMENTS = {
    # (file, content, the one error line it gives; None: it runs)
    "mine.yaml": (
        "# @package _global_\n# My own: moons, one epoch.\ndefaults:\n"
        "  - override /dataset: moons\ntrainer:\n  epochs: 1\n",
        None,
    ),
    "nopkg.yaml": (
        "defaults:\n  - override /dataset: moons\n",
        "experiment/nopkg.yaml must start with the line '# @package _global_'",
    ),
    "nopkg_keys.yaml": (
        "trainer:\n  epochs: 1\n",
        "experiment/nopkg_keys.yaml must start with the line '# @package _global_' (it sets "
        "experiment.trainer instead of trainer)",
    ),
    "broken.yaml": (
        "# @package _global_\ntrainer:\n  epochs: [2\n",
        "broken.yaml:4:1: not valid YAML",
    ),
    "typo.yaml": (
        "# @package _global_\ntrainer:\n  epoch: 5\n",
        "; did you mean trainer.epochs? (set in ",
    ),
    "negative.yaml": (
        "# @package _global_\ntrainer:\n  epochs: -2\n",
        "trainer.epochs must be a positive integer, got -2 (set in ",
    ),
}


def test_a_user_folder_of_experiments(tmp_path: Path) -> None:
    """--config-dir: its experiments are in --help and run; each mistake is one line."""
    mine = tmp_path / "my_experiments"
    (mine / "experiment").mkdir(parents=True)
    for name, (text, _) in USER_EXPERIMENTS.items():
        (mine / "experiment" / name).write_text(text)
    proc = mlpx(tmp_path, "--config-dir", str(mine), "--help", timeout=60)
    assert proc.returncode == 0
    assert "mine                 My own: moons, one epoch." in proc.stdout
    assert "moons_small" in proc.stdout and "_schedule" not in proc.stdout
    for name, (_, line) in USER_EXPERIMENTS.items():
        args = ["--config-dir", str(mine), f"experiment={Path(name).stem}", "logger=none"]
        args += ["analysis=off"]
        proc = mlpx(tmp_path, *args, timeout=120)
        if line is None:
            assert proc.returncode == 0, proc.stderr
            assert "on moons" in proc.stderr or "moons" in proc.stderr
            continue
        assert proc.returncode == 2, proc.stderr
        errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
        assert len(errors) == 1 and line in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert str(mine / "experiment" / "negative.yaml") in errors[0]


def test_a_missing_plugin_names_the_extra(tmp_path: Path) -> None:
    """Without the sweep extra (hidden here: a regular hydra_plugins package first on the path
    hides the launchers; an optuna package that fails to import stands for a missing optuna)
    a launcher or the Optuna search says what to install. mlpx's own sweepers ship with mlpx."""
    shadow = tmp_path / "shadow" / "hydra_plugins"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (tmp_path / "shadow" / "optuna").mkdir()
    (tmp_path / "shadow" / "optuna" / "__init__.py").write_text(
        "raise ImportError('No module named optuna')\n"
    )
    env = mlpx_env(PYTHONPATH=str(shadow.parent))
    for args, plugin in [
        (["hydra/launcher=joblib"], "hydra/launcher=joblib needs the Hydra plugin hydra-joblib"),
        (["hparams_search=mlp_optuna"], "hydra/sweeper=optuna needs optuna >= 4, which is not"),
    ]:
        proc = mlpx(tmp_path, *args, "logger=none", timeout=60, env=env)
        assert proc.returncode == 2, proc.stderr
        errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
        assert len(errors) == 1 and plugin in errors[0], proc.stderr
        assert errors[0].endswith("which is not installed: pip install 'mlpx[sweep]'")

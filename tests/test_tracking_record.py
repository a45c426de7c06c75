"""What a run says about itself: the end-of-run lines, the description, the seed group, the
UI command and URL, and the opt-in system metrics."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mlpx.app.build import build
from mlpx.app.config import settings_from_dict
from mlpx.app.describe import reproduce_command, result_line, run_description, where_lines
from mlpx.app.record import SEED_GROUP_TAG, group_tag, seed_group_hash
from mlpx.app.sweep import config_hash
from mlpx.tracking.ui import run_url, ui_command
from mlpx.train import FitResult

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def _result(**kw) -> FitResult:
    base = {
        "epochs_run": 24,
        "steps": 960,
        "best_epoch": 19,
        "stopped_early": True,
        "test": {"test/loss": 0.16094, "test/accuracy": 0.97037},
        "objective": 0.9741,
        "seconds": 3.14,
    }
    return FitResult(**{**base, **kw})


def test_result_line_says_accuracy_loss_epochs_early_stop_and_time() -> None:
    line = result_line(_result(), "val/accuracy")
    assert line == (
        "test accuracy 0.9704, test loss 0.1609; 24 epochs (stopped early, best epoch 19), "
        "3.1 s; objective val/accuracy=0.9741"
    )
    plain = result_line(_result(stopped_early=False, best_epoch=0, epochs_run=1), "test/loss")
    assert plain == "test accuracy 0.9704, test loss 0.1609; 1 epoch, 3.1 s"
    assert result_line(_result(test={})).startswith("no test split; ")


def test_where_lines_name_experiment_store_ui_and_url_and_a_changed_experiment() -> None:
    uri = "sqlite:////tmp/x y/mlflow.db"
    url = run_url(uri, "3", "abc")
    assert url == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert ui_command(uri) == "mlflow ui --backend-store-uri 'sqlite:////tmp/x y/mlflow.db'"
    lines = where_lines("r", "mlpx", uri, ui_command(uri), url, default_experiment="mlpx")
    assert lines == [
        f"MLflow run r in experiment 'mlpx' of {uri}",
        f"see it: {ui_command(uri)}, then open {url}",
    ]
    moved = where_lines(
        "r", "moons", uri, "cmd", url, default_experiment="mlpx", overlay="moons_small"
    )
    assert "experiment=moons_small sets logger.experiment_name" in moved[0]
    assert "the default is 'mlpx'" in moved[0]
    server = "http://127.0.0.1:5005/"
    assert run_url(server, "1", "r1") == (
        "http://127.0.0.1:5005/#/experiments/1/runs/r1?workflowType=machine_learning"
    )
    assert run_url(uri, None, "r1") is None


def test_reproduce_command_quotes_each_override() -> None:
    cmd = reproduce_command(["model.widths=[64,32]", "logger.run_name=a b", "optimizer=sgd"])
    assert cmd == "mlpx 'model.widths=[64,32]' 'logger.run_name=a b' optimizer=sgd"
    assert shlex.split(cmd)[1:] == ["model.widths=[64,32]", "logger.run_name=a b", "optimizer=sgd"]


def test_run_description_has_result_model_dataset_optimizer_and_command() -> None:
    container = composed("optimizer=momentum", "optimizer.lr=0.05", "trainer.epochs=7")
    settings = settings_from_dict(container)
    built = build(settings)
    cmd = reproduce_command(["optimizer=momentum", "optimizer.lr=0.05", "trainer.epochs=7"])
    text = run_description(settings, built.data, built.model, _result(), cmd)
    assert text.startswith(f"## {settings.run_name()}\n")
    assert "**Result:** test accuracy 0.9704, test loss 0.1609; 24 epochs" in text
    assert "MLP 64 → 128 → 64 → 10; activations relu, relu, linear" in text
    assert f"{built.model.num_parameters:,} parameters" in text
    d = built.data
    assert f"digits: 64 features, 10 classes; {len(d.y_train)} train / {len(d.y_val)} " in text
    assert "| optimizer | momentum, lr 0.05, momentum=0.9" in text
    assert "| training | 7 epochs, batch 32, seed 0" in text
    assert f"```bash\n{cmd}\n```" in text
    assert "None" not in text and "runs:/<run_id>/model" in text
    named = run_description(settings, built.data, built.model, _result(), cmd, "abc123")
    assert "mlflow.pyfunc.load_model('runs:/abc123/model')" in named
    lean = settings_from_dict(composed("logger.log_model=false"))
    no_model = run_description(lean, built.data, built.model, _result(), cmd, "abc123")
    assert "load_model" not in no_model and "config/config.yaml" in no_model
    before = run_description(settings, built.data, built.model, None, cmd)
    assert "Result" not in before and cmd in before


def test_seed_group_is_the_config_hash_without_the_seed() -> None:
    a, b = composed("trainer.seed=0"), composed("trainer.seed=1")
    assert config_hash(a) != config_hash(b)
    assert seed_group_hash(a) == seed_group_hash(b)
    assert seed_group_hash(a) != seed_group_hash(composed("optimizer.lr=0.01"))
    assert group_tag(a) == {SEED_GROUP_TAG: seed_group_hash(a)}


def test_system_metrics_need_psutil_and_say_so(tmp_path: Path) -> None:
    from mlpx.app.record import start_system_metrics, stop_system_metrics
    from mlpx.tracking import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db", "sys", "r")
    try:
        import psutil  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"logger.system_metrics=true needs psutil"):
            start_system_metrics(tracker.tracking_uri, tracker.run_id)
        tracker.finish()
        return
    monitor = start_system_metrics(tracker.tracking_uri, tracker.run_id, interval=0.2)
    import time

    time.sleep(1.0)
    stop_system_metrics({"monitor": monitor})
    tracker.finish()
    from mlflow import MlflowClient

    metrics = MlflowClient(tracker.tracking_uri).get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/system_memory_usage_megabytes" in metrics

"""End to end: what a reviewer finds after ``mlpx``: the lines at the end, the run's
description, metrics, params, dataset inputs and model (loadable, servable, registered), a
sweep parent's link to its best model. All slow (subprocesses)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import client, mlpx_env, run_mlpx, runs_of

pytestmark = pytest.mark.slow

#: Where a test reads neither analyses nor figures (the default run below records both).
NO_FIGURES = ("analysis=off", "logger.log_figures=false")


def test_a_default_run_ends_with_where_it_is_and_leaves_a_usable_model(tmp_path: Path) -> None:
    proc = run_mlpx(tmp_path, "trainer.epochs=3", "logger.register_model=mlpx-digits")
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = runs_of(uri)
    rid, exp_id = run.info.run_id, run.info.experiment_id
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: ")]
    done = next(x for x in lines if x.startswith("mlpx: done: "))
    assert f"test accuracy {metrics['test/accuracy']:.4f}" in done and "3 epochs" in done
    assert f"mlpx: MLflow run {run.info.run_name} in experiment 'mlpx' of {uri}" in lines
    see = f"mlpx: see it: mlflow ui --backend-store-uri {uri}, then open "
    url = f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{rid}?workflowType=machine_learning"
    assert f"{see}{url}" in lines
    assert not any(re.search(r"\{'epochs'", x) for x in lines)  # no Python dict any more

    # the description, params without None, one series per quantity, sanity as tags
    note = tags["mlflow.note.content"]
    assert "**Result:** test accuracy" in note and "digits: 64 features" in note
    assert "```bash\nmlpx trainer.epochs=3 logger.register_model=mlpx-digits\n```" in note
    assert "None" not in params.values() and params["model.widths"] == "[128, 64]"
    assert {"train/loss", "train/loss_window", "test/accuracy", "grad_norm/global"} <= set(metrics)
    assert not any(k.startswith("sanity") for k in metrics)
    assert tags["sanity.initial_loss"] == "passed"
    assert any(k.startswith("health/") for k in metrics)
    assert re.fullmatch(r"[0-9a-f]{64}", tags["mlpx.seed_group"])
    c = client(uri)
    epochs = [m.step for m in c.get_metric_history(rid, "epoch")]
    assert sorted(m.step for m in c.get_metric_history(rid, "train/loss")) == sorted(epochs)
    contexts = sorted(t.value for d in c.get_run(rid).inputs.dataset_inputs for t in d.tags)
    assert contexts == ["test", "train", "validation"]

    # the model: raw digits in, the run's test accuracy out; registered; mlflow models predict
    import mlflow

    from mlpx.data import load_dataset

    raw = load_dataset("digits", standardize=False)  # the default split, raw pixels
    mlflow.set_tracking_uri(uri)
    try:
        out = mlflow.pyfunc.load_model(f"runs:/{rid}/model").predict(raw.X_test)
    finally:
        mlflow.set_tracking_uri(None)
    accuracy = float(np.mean(out["label"].to_numpy() == raw.y_test))
    assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-12)
    assert tags["mlpx.model_uri"].startswith("models:/m-")
    (version,) = c.search_model_versions("name = 'mlpx-digits'")
    assert version.source == tags["mlpx.model_uri"]
    (tmp_path / "in.json").write_text(json.dumps({"inputs": raw.X_test[:4].tolist()}))
    predict = ["models", "predict", "-m", f"runs:/{rid}/model", "-i", "in.json", "-t", "json"]
    served = subprocess.run(
        [sys.executable, "-m", "mlflow", *predict, "-o", "out.json", "--env-manager", "local"],
        cwd=tmp_path,
        env=mlpx_env(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert served.returncode == 0, served.stderr[-2000:]
    predictions = json.loads((tmp_path / "out.json").read_text())["predictions"]
    assert [p["label"] for p in predictions] == list(out["label"][:4])


@pytest.mark.usefixtures("sqlite_store")  # MLflow's default store (cwd), made beforehand
def test_another_experiment_is_named_and_log_model_false_logs_none(tmp_path: Path) -> None:
    proc = run_mlpx(
        tmp_path,
        "experiment=moons_small",
        "trainer.epochs=3",
        "logger.log_model=false",
        *NO_FIGURES,
    )
    assert proc.returncode == 0, proc.stderr
    assert "experiment 'moons' (experiment=moons_small sets logger.experiment_name" in proc.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = runs_of(uri, "moons")
    assert "mlpx.model_uri" not in run.data.tags
    assert not client(uri).search_logged_models(experiment_ids=[run.info.experiment_id])


@pytest.mark.usefixtures("sqlite_store")  # MLflow's default store (cwd), made beforehand
def test_a_sweep_parent_links_its_best_run_s_model_and_seeds_share_a_group(tmp_path: Path) -> None:
    proc = run_mlpx(
        tmp_path, "-m", "trainer.seed=0,1", "trainer.epochs=2", *NO_FIGURES, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = runs_of(uri)
    (parent,) = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    children = [r for r in runs if r is not parent]
    assert len(children) == 2
    assert len({r.data.tags["mlpx.seed_group"] for r in children}) == 1
    assert len({r.data.tags["mlpx.config_hash"] for r in children}) == 2
    best = next(r for r in children if r.info.run_id == parent.data.tags["best_run_id"])
    assert parent.data.tags["best_model_uri"] == best.data.tags["mlpx.model_uri"]
    linked = [m.model_id for m in client(uri).get_run(parent.info.run_id).outputs.model_outputs]
    assert [f"models:/{m}" for m in linked] == [parent.data.tags["best_model_uri"]]

"""The run's model as an MLflow pyfunc (raw features in, labels and probabilities out), the
dataset as run inputs, the sweep parent's link to the best model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlpx.data import load_dataset
from mlpx.nn.activations import ACTIVATIONS
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MlflowTracker, prepare_store
from mlpx.tracking.datasets import log_dataset_inputs
from mlpx.tracking.model import (
    MODEL_NAME,
    link_model,
    log_model,
    logged_model_ids,
    raw_features,
    save_weights,
)
from mlpx.train import EarlyStopping, TrainerSettings, fit

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    prepare_store(uri, "models")
    return uri


@pytest.fixture(scope="module")
def client(store: str):
    return mlflow.MlflowClient(store)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_size=0.15, test_size=0.15, seed=0)


def _load(store: str, run_id: str):
    mlflow.set_tracking_uri(store)
    try:
        return mlflow.pyfunc.load_model(f"runs:/{run_id}/{MODEL_NAME}")
    finally:
        mlflow.set_tracking_uri(None)


def test_a_trained_run_s_model_predicts_raw_digits_with_the_run_s_test_accuracy(
    store: str, client, digits
) -> None:
    """The logged model takes RAW pixels (0..16): the standardisation is inside it."""
    rng = np.random.default_rng(0)
    net = MLP([64, 32, 10], "relu", rng=rng)
    tracker = MlflowTracker(store, "models", "trained")
    settings = TrainerSettings(epochs=4, batch_size=32, early_stopping=EarlyStopping())
    result = fit(net, make_optimizer("adam", lr=0.01), digits, settings, tracker, rng=rng)
    tracker.flush()  # the test metrics in the store: linked to the model at their step
    info = log_model(store, tracker.run_id, net, digits, step=result.steps)
    tracker.finish()

    raw = load_dataset("digits", val_size=0.15, test_size=0.15, seed=0, standardize=False)
    assert raw.X_test.max() == 16.0  # really the raw pixels, not standardised ones
    out = _load(store, tracker.run_id).predict(raw.X_test)
    accuracy = float(np.mean(out["label"].to_numpy() == raw.y_test))
    assert accuracy == pytest.approx(result.test["test/accuracy"], abs=1e-12)
    assert accuracy > 0.8
    proba = out[[f"proba_{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(proba, net.predict_proba(digits.X_test), rtol=1e-9, atol=1e-12)
    assert list(out["class_name"]) == [digits.class_names[k] for k in out["label"]]

    # what MLflow shows: the model is the run's output, READY, with its signature and example
    (model_id,) = logged_model_ids(client, tracker.run_id)
    model = client.get_logged_model(model_id)
    assert model.name == MODEL_NAME and str(model.status).endswith("READY")
    assert model.source_run_id == tracker.run_id
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 64]
    cols = [c["name"] for c in info.signature.outputs.to_dict()]
    assert cols == ["label", "class_name", *(f"proba_{k}" for k in range(10))]
    assert {m.key for m in model.metrics or []} >= {"test/accuracy", "test/loss"}


def test_the_served_model_is_pickle_free_and_equals_the_network_for_every_activation(
    store: str, tmp_path: Path
) -> None:
    """One network with each activation of the registry in a hidden layer."""
    data = load_dataset("iris", val_size=0.0, test_size=0.3, seed=1)
    names = list(ACTIVATIONS)
    sizes = [data.n_features, *[6] * len(names), data.n_classes]
    net = MLP(sizes, activations=[*names, "linear"], rng=np.random.default_rng(3))
    tracker = MlflowTracker(store, "models", "activations")
    log_model(store, tracker.run_id, net, data)
    tracker.finish()
    X_raw = raw_features(data, data.X_test)
    out = _load(store, tracker.run_id).predict(X_raw)
    proba = out[[f"proba_{k}" for k in range(data.n_classes)]].to_numpy()
    np.testing.assert_allclose(proba, net.predict_proba(data.X_test), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(out["label"].to_numpy(), net.predict(data.X_test))
    # the weights file loads without pickle; the model folder holds no pickle at all
    path = save_weights(tmp_path / "w.npz", net, data)
    with np.load(path, allow_pickle=False) as z:
        assert list(z["activations"]) == [*names, "linear"]
    mlflow.set_tracking_uri(store)  # runs:/ -> the logged model: MLflow reads the global URI
    try:
        local = mlflow.artifacts.download_artifacts(
            f"runs:/{tracker.run_id}/{MODEL_NAME}", dst_path=str(tmp_path / "m")
        )
    finally:
        mlflow.set_tracking_uri(None)
    files = [p.name for p in Path(local).rglob("*") if p.is_file()]
    assert "weights.npz" in files and "served_model.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    requirements = (Path(local) / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements] == ["mlflow", "numpy", "pandas"]


def test_register_model_and_link_to_a_parent(store: str, client, digits, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert not mlflow.is_tracking_uri_set()  # log_model leaves MLflow's global URI alone
    net = MLP([64, 10], "linear", rng=np.random.default_rng(0))
    child = MlflowTracker(store, "models", "child")
    info = log_model(store, child.run_id, net, digits, registered_model_name="mlpx-test-digits")
    child.finish()
    assert not mlflow.is_tracking_uri_set()
    versions = client.search_model_versions("name = 'mlpx-test-digits'")
    assert [v.source for v in versions] == [info.model_uri]
    parent = MlflowTracker(store, "models", "parent")
    (model_id,) = logged_model_ids(client, child.run_id)
    link_model(client, parent.run_id, model_id)
    parent.finish()
    assert logged_model_ids(client, parent.run_id) == [model_id]


def test_dataset_inputs_one_per_split_with_its_context(store: str, client, digits) -> None:
    tracker = MlflowTracker(store, "models", "inputs")
    log_dataset_inputs(client, tracker.run_id, digits)
    tracker.finish()
    inputs = client.get_run(tracker.run_id).inputs.dataset_inputs
    got = {}
    for di in inputs:
        (context,) = [t.value for t in di.tags if t.key == "mlflow.data.context"]
        profile = json.loads(di.dataset.profile)
        got[context] = (di.dataset.name, profile["features_shape"], profile["targets_shape"])
        assert len(di.dataset.digest) >= 8
    assert got == {
        "train": ("digits", list(digits.X_train.shape), [len(digits.y_train)]),
        "validation": ("digits", list(digits.X_val.shape), [len(digits.y_val)]),
        "test": ("digits", list(digits.X_test.shape), [len(digits.y_test)]),
    }
    assert len({di.dataset.digest for di in inputs}) == 3  # each split its own digest

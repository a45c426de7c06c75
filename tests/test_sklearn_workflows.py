"""mlpx.sklearn.MLPClassifier inside scikit-learn: check_estimator (the whole suite, nothing
declared as an expected failure), Pipeline, GridSearchCV(n_jobs=2), cross_val_score, clone,
pickling; accuracy parity with scikit-learn's MLPClassifier (slow); MLflow autologging (slow)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from mlpx.sklearn import MLPClassifier


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)


def test_check_estimator_passes_every_check() -> None:
    results = check_estimator(MLPClassifier(), on_fail=None, on_skip=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed
    assert not [r for r in results if r["status"] == "xfail"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    # scikit-learn skips the array-API check unless SCIPY_ARRAY_API=1 is set (its own
    # MLPClassifier too); every other check ran.
    assert skipped <= {"check_array_api_input"}, skipped
    assert len(results) > 50


def iris_split():
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def test_pipeline_gridsearch_parallel_and_cross_val_score() -> None:
    X_train, X_test, y_train, y_test = iris_split()
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(max_iter=100, learning_rate_init=0.01, random_state=0)),
        ]
    )
    grid = GridSearchCV(
        pipe,
        {"mlp__hidden_layer_sizes": [(4,), (16,)], "mlp__activations": [None, ["gelu"]]},
        cv=3,
        n_jobs=2,
    ).fit(X_train, y_train)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.score(X_test, y_test) > 0.85
    best = grid.best_estimator_.named_steps["mlp"]
    assert best.get_params()["hidden_layer_sizes"] == grid.best_params_["mlp__hidden_layer_sizes"]
    scores = cross_val_score(pipe, X_train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.7


def test_clone_and_pickle() -> None:
    X_train, X_test, y_train, _ = iris_split()
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=40, random_state=0, optimizer={})
    fitted = clone(est).fit(X_train, y_train)
    again = clone(fitted)
    assert again.get_params() == est.get_params() and not hasattr(again, "net_")
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(restored.coefs_[0], fitted.coefs_[0])
    assert restored.classes_.tolist() == fitted.classes_.tolist()


def test_readme_example_runs() -> None:
    """The README's Pipeline + GridSearchCV example (n_jobs=1 here; 2 above)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    pipe = make_pipeline(
        StandardScaler(), MLPClassifier(max_iter=30, batch_size=64, random_state=0)
    )
    grid = GridSearchCV(
        pipe,
        {"mlpclassifier__hidden_layer_sizes": [(32,), (64,)], "mlpclassifier__alpha": [1e-4]},
        cv=2,
    ).fit(X_train, y_train)
    assert grid.score(X_test, y_test) > 0.9


# ---------------------------------------------------------------------- parity


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "digits": load_digits(return_X_y=True),
        "iris": load_iris(return_X_y=True),
        "moons": make_moons(n_samples=500, noise=0.3, random_state=0),
        "breast_cancer": load_breast_cancer(return_X_y=True),
    }


PARITY_SETTINGS = dict(hidden_layer_sizes=(64,), batch_size=32, max_iter=200)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "iris", "moons", "breast_cancer"])
def test_accuracy_parity_with_scikit_learn(name: str) -> None:
    """Test accuracy, mean over 5 seeds, within one standard deviation of scikit-learn's
    MLPClassifier under the same settings (the larger of the two standard deviations, and at
    least one test sample, so two runs whose seeds all agree can still be compared)."""
    X, y = _datasets()[name]
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    acc: dict[str, list[float]] = {"mlpx": [], "sklearn": []}
    for seed in range(5):
        for key, cls in (("mlpx", MLPClassifier), ("sklearn", SkMLP)):
            pipe = make_pipeline(StandardScaler(), cls(random_state=seed, **PARITY_SETTINGS))
            acc[key].append(pipe.fit(X_tr, y_tr).score(X_te, y_te))
    mean = {k: float(np.mean(v)) for k, v in acc.items()}
    std = {k: float(np.std(v)) for k, v in acc.items()}
    tol = max(std["mlpx"], std["sklearn"], 1.0 / len(y_te))
    for key in acc:
        print(f"{name}: {key} {mean[key]:.4f}±{std[key]:.4f}")
    assert abs(mean["mlpx"] - mean["sklearn"]) <= tol, (mean, std)
    assert mean["mlpx"] > 0.8


# ---------------------------------------------------------------------- MLflow


@pytest.mark.slow
def test_mlflow_sklearn_autolog_logs_params_and_metrics(tmp_path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    import mlflow
    import mlflow.sklearn

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    X_train, _, y_train, _ = iris_split()
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    try:
        pipe = make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
        )
        with mlflow.start_run() as run:
            pipe.fit(X_train, y_train)
        data = mlflow.get_run(run.info.run_id).data
    finally:
        mlflow.sklearn.autolog(disable=True)
        mlflow.set_tracking_uri(None)
    assert data.params["mlpclassifier__hidden_layer_sizes"] == "(8,)"
    assert data.params["mlpclassifier__solver"] == "adam"
    assert "mlpclassifier__activations" in data.params
    assert 0.0 <= data.metrics["training_accuracy_score"] <= 1.0
    assert data.metrics["training_log_loss"] > 0

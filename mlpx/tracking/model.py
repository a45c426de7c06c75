"""A run's network as an MLflow model: ``runs:/<run_id>/model``, pickle-free, on raw features.

:func:`log_model` logs the trained network of a run as an MLflow "models from code" pyfunc
(:mod:`mlpx.tracking.served_model`), with its weights in an ``.npz``, a signature and an
input example, and (given a name) registers it::

    info = log_model(uri, run_id, net, data, step=result.steps)
    mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(raw_X)   # label, proba_<k>

The model takes the RAW features: the training split's standardisation (``data.mean``,
``data.scale``) is inside it. Kept cheap (~0.1-0.3 s on a local store): explicit
``pip_requirements`` (no inference of the environment), no conda solving.
MLflow is imported inside the functions.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.backend import to_numpy

__all__ = [
    "MODEL_NAME",
    "link_model",
    "log_model",
    "logged_model_ids",
    "model_signature",
    "pip_requirements",
    "raw_features",
    "save_model",
    "save_weights",
]

#: The name of the logged model of every run: ``runs:/<run_id>/model``.
MODEL_NAME = "model"
_HERE = Path(__file__).resolve().parent
SERVED_MODEL = _HERE / "served_model.py"
ACTIVATIONS_FILE = _HERE.parent / "nn" / "activations.py"


def save_weights(path: str | os.PathLike, net: Any, data: Any) -> Path:
    """Write ``net``'s weights and ``data``'s standardisation to the ``.npz`` the served model
    reads: ``W_<l>`` (p_l, p_(l-1)), ``b_<l>`` (p_l,), ``activations`` (L), ``class_names``
    (C), ``mean`` and ``scale`` (d,) (0 and 1 when the data was not standardised). Only
    plain arrays: loads with ``allow_pickle=False``."""
    d = int(data.n_features)
    mean = np.zeros(d) if data.mean is None else np.asarray(data.mean, dtype=np.float64)
    scale = np.ones(d) if data.scale is None else np.asarray(data.scale, dtype=np.float64)
    arrays: dict[str, np.ndarray] = {
        "activations": np.array(list(net.activations), dtype=str),
        "class_names": np.array([str(c) for c in data.class_names], dtype=str),
        "mean": mean,
        "scale": scale,
    }
    for l, (W, b) in enumerate(zip(net.weights, net.biases), start=1):
        arrays[f"W_{l}"] = to_numpy(W)
        arrays[f"b_{l}"] = to_numpy(b)
    path = Path(path)
    np.savez(path, **arrays)
    return path


def raw_features(data: Any, X: np.ndarray) -> np.ndarray:
    """Undo the standardisation of ``data``: ``raw = X * scale + mean`` (n, d) float64."""
    X = np.asarray(X, dtype=np.float64)
    if data.mean is None:
        return X
    return X * np.asarray(data.scale) + np.asarray(data.mean)


def model_signature(n_features: int, n_classes: int) -> Any:
    """Input: a float64 tensor (-1, d) of raw features. Output: ``label`` (long),
    ``class_name`` (string), ``proba_<k>`` (double) for k = 0..C-1."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.float64), (-1, int(n_features)))])
    cols = [ColSpec("long", "label"), ColSpec("string", "class_name")]
    cols += [ColSpec("double", f"proba_{k}") for k in range(int(n_classes))]
    return ModelSignature(inputs=inputs, outputs=Schema(cols))


def pip_requirements() -> list[str]:
    """What serving the model needs, pinned to this environment: mlflow, numpy, pandas."""
    out = []
    for package in ("mlflow", "numpy", "pandas"):
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            out.append(package)
    return out


def _pyfunc_arguments(folder: str, net: Any, data: Any, n_examples: int) -> dict[str, Any]:
    """The arguments of ``mlflow.pyfunc.save_model`` / ``Model.log`` for ``net`` (its weights
    written into ``folder``): the served model's code and artifacts, signature, input
    example (``n_examples`` raw test rows, else training rows) and pinned requirements."""
    X = data.X_test if data.X_test.shape[0] else data.X_train
    weights = save_weights(Path(folder) / "weights.npz", net, data)
    return {
        "python_model": str(SERVED_MODEL),
        "artifacts": {"weights": str(weights), "activations": str(ACTIVATIONS_FILE)},
        "signature": model_signature(data.n_features, data.n_classes),
        "input_example": raw_features(data, to_numpy(X[:n_examples])),
        "pip_requirements": pip_requirements(),
    }


def save_model(path: str | os.PathLike, net: Any, data: Any, *, n_examples: int = 5) -> Path:
    """Save ``net`` as the same MLflow model :func:`log_model` logs, into the new folder
    ``path`` instead of a run (``mlflow.pyfunc.load_model(path)`` loads it); returns it."""
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="mlpx-model-") as tmp, _quiet_mlflow():
        mlflow.pyfunc.save_model(path=str(path), **_pyfunc_arguments(tmp, net, data, n_examples))
    return Path(path)


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """No progress bars, no "Validating input example" (INFO), no warning asking for type
    hints on ``predict`` (the model has an explicit signature)."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            yield
    finally:
        quiet.setLevel(level)


def log_model(
    tracking_uri: str,
    run_id: str,
    net: Any,
    data: Any,
    *,
    step: int = 0,
    registered_model_name: str | None = None,
    n_examples: int = 5,
) -> Any:
    """Log ``net`` as the model ``model`` of run ``run_id``; return MLflow's ``ModelInfo``.

    ``step``: the run's metrics at this step (the test metrics: the last step) are linked
    to the model. ``registered_model_name``: also a new version of that registered model.
    The input example is ``n_examples`` raw rows of the test split (else training).
    """
    import mlflow
    from mlflow.models import Model

    # Model.log reads MLflow's global URI: set it for the call, then put back what was there
    # (None when nothing was set or only MLFLOW_TRACKING_URI was: that keeps being read).
    previous = mlflow.get_tracking_uri()
    if not mlflow.is_tracking_uri_set() or os.environ.get("MLFLOW_TRACKING_URI") == previous:
        previous = None
    # set_tracking_uri also sets MLFLOW_TRACKING_URI, and set_tracking_uri(None) deletes it:
    # put back the variable exactly as it was, or the next job of a sweep that was sent to a
    # server through MLFLOW_TRACKING_URI would record into MLflow's local default store.
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        run = mlflow.MlflowClient(tracking_uri).get_run(run_id)
        # Created here, in the run's experiment (Model.log alone would put it in the active
        # or default experiment); Model.log fills it in and marks it READY.
        logged = mlflow.initialize_logged_model(
            name=MODEL_NAME,
            source_run_id=run_id,
            params=dict(run.data.params),
            tags={"mlpx.run_name": run.info.run_name or ""},
            experiment_id=run.info.experiment_id,
        )
        with tempfile.TemporaryDirectory(prefix="mlpx-model-") as tmp, _quiet_mlflow():
            return Model.log(
                artifact_path=None,
                name=MODEL_NAME,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                **_pyfunc_arguments(tmp, net, data, n_examples),
                registered_model_name=registered_model_name,
                await_registration_for=0,
                step=int(step),
                model_id=logged.model_id,
            )
    finally:
        mlflow.set_tracking_uri(previous)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def logged_model_ids(client: Any, run_id: str) -> list[str]:
    """The ids of the models logged by run ``run_id`` (its outputs), oldest first."""
    run = client.get_run(run_id)
    outputs = getattr(run, "outputs", None)
    return [m.model_id for m in (outputs.model_outputs if outputs else [])]


def link_model(client: Any, run_id: str, model_id: str, step: int = 0) -> None:
    """Show the logged model ``model_id`` among run ``run_id``'s outputs (a sweep's parent
    links its best run's model)."""
    from mlflow.entities import LoggedModelOutput

    client.log_outputs(run_id, [LoggedModelOutput(model_id, step=int(step))])

"""An mlpx network as an MLflow "models from code" pyfunc: the file MLflow loads to serve it.

MLflow copies this file into the logged model (``python_model=<this file>``, see
:func:`mlpx.tracking.model.log_model`) and runs it when the model is loaded
(``mlflow.pyfunc.load_model("runs:/<run_id>/model")``, ``mlflow models predict``): nothing
is pickled. Its two artifacts:

* ``weights``: an ``.npz`` written by :func:`mlpx.tracking.model.save_weights` --
  ``W_<l>`` (p_l, p_(l-1)) and ``b_<l>`` (p_l,) for l = 1..L, ``activations`` (L names),
  ``class_names`` (C), and ``mean``, ``scale`` (d,): the training split's standardisation;
* ``activations``: the run's own ``mlpx/nn/activations.py`` (the lecture's ``phi_l``),
  loaded from the model's folder, so serving needs NumPy and pandas but not mlpx.

``predict`` takes RAW features X (n, d) (a NumPy array, a DataFrame or nested lists) and
computes ``x = (raw - mean) / scale``, ``a_l = f_(l-1) W_l^T + b_l``, ``f_l = phi_l(a_l)``,
``mu = S(f_L)``, in the weights' dtype. It returns a DataFrame of n rows: ``label`` (the
class index k = argmax f_L, as in mlpx), ``class_name`` (``class_names[k]``) and
``proba_<k>`` (mu_k) for k = 0..C-1.

Importing this module registers its model with ``mlflow.models.set_model``: only MLflow
should import it.
"""

from __future__ import annotations

import importlib.util
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def _load_activations(path: str):
    spec = importlib.util.spec_from_file_location("mlpx_served_activations", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.ACTIVATIONS


class MlpClassifier(PythonModel):
    """The network of one mlpx run: raw features -> labels and class probabilities."""

    def load_context(self, context):
        with np.load(context.artifacts["weights"], allow_pickle=False) as z:
            n_layers = len(z["activations"])
            self.weights = [z[f"W_{l}"] for l in range(1, n_layers + 1)]
            self.biases = [z[f"b_{l}"] for l in range(1, n_layers + 1)]
            self.activation_names = [str(a) for a in z["activations"]]
            self.class_names = [str(c) for c in z["class_names"]]
            self.mean, self.scale = z["mean"], z["scale"]
        registry = _load_activations(context.artifacts["activations"])
        self.phis = [registry[name].forward for name in self.activation_names]

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        raw = np.asarray(model_input, dtype=np.float64)
        if raw.ndim == 1:
            raw = raw[None, :]
        d = self.weights[0].shape[1]
        if raw.ndim != 2 or raw.shape[1] != d:
            raise ValueError(f"expected raw features of shape (n, {d}), got {raw.shape}")
        f = ((raw - self.mean) / self.scale).astype(self.weights[0].dtype)
        for W, b, phi in zip(self.weights, self.biases, self.phis):
            f = phi(f @ W.T + b, np)
        z = f - f.max(axis=1, keepdims=True)
        mu = np.exp(z)
        mu /= mu.sum(axis=1, keepdims=True)
        label = np.argmax(f, axis=1).astype(np.int64)
        out = pd.DataFrame({"label": label, "class_name": [self.class_names[k] for k in label]})
        for k in range(mu.shape[1]):
            out[f"proba_{k}"] = mu[:, k].astype(np.float64)
        return out


mlflow.models.set_model(MlpClassifier())

"""A run's dataset as MLflow run inputs: one input per split, with its context.

MLflow's UI lists a run's inputs under "Datasets": here the dataset's name, the digest of
each split's arrays, its schema (features (n, d) float, targets (n,) int) and profile
(shapes: the split sizes), with the context ``train``, ``validation`` or ``test`` (tag
``mlflow.data.context``). An empty split (``dataset.val_size=0``) is left out. MLflow is
imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpx.backend import to_numpy

__all__ = ["CONTEXTS", "dataset_inputs", "log_dataset_inputs"]

#: Split attribute suffix -> MLflow's context name.
CONTEXTS = {"train": "train", "val": "validation", "test": "test"}


def dataset_inputs(data: Any) -> list[Any]:
    """``mlflow.entities.DatasetInput`` of each non-empty split of ``data`` (an
    :class:`mlpx.data.Dataset`), named ``data.name``, in the order train, validation, test."""
    import mlflow.data
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for split, context in CONTEXTS.items():
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        if X.shape[0] == 0:
            continue
        ds = mlflow.data.from_numpy(np.asarray(to_numpy(X)), targets=np.asarray(y), name=data.name)
        tag = InputTag(key="mlflow.data.context", value=context)
        out.append(DatasetInput(dataset=Dataset(**ds.to_dict()), tags=[tag]))
    return out


def log_dataset_inputs(client: Any, run_id: str, data: Any) -> list[Any]:
    """Log :func:`dataset_inputs` of ``data`` on run ``run_id`` (``client``: an
    ``MlflowClient``); returns them."""
    inputs = dataset_inputs(data)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    return inputs

"""Sizes checked before anything is allocated (issue 19, case 10).

:func:`check_sizes` estimates the memory of the data and of the network from the checked
settings (nothing is loaded or built) and compares it with what the machine has
(:func:`mlpx.memory.available_ram`; the GPU's free memory for torch/CuPy on ``cuda``);
a config that cannot fit stops with one line naming the key to change. It also bounds
the number of hidden layers. :func:`bounded` keeps run names and printed lines short.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlpx.app.config import ConfigError, Settings
from mlpx.memory import available_gpu_memory, available_ram, format_bytes, parameter_count

#: More hidden layers than this is refused (20000 layers of width 2: minutes per step).
MAX_HIDDEN_LAYERS = 1000
#: Run names longer than this are cut (with a hash of the whole name, so they stay distinct).
MAX_RUN_NAME = 120

#: (samples, features) of the datasets whose size is fixed.
FIXED_SIZES = {
    "iris": (150, 4),
    "wine": (178, 13),
    "breast_cancer": (569, 30),
    "digits": (1797, 64),
}
#: Arrays of parameter size an optimizer keeps (the most over its options).
OPTIMIZER_STATE = {"sgd": 1, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 3}
#: float64 copies of X a load makes: generated, contiguous, split, standardised.
DATA_COPIES = 4


def bounded(text: str, limit: int = MAX_RUN_NAME) -> str:
    """``text`` if it has at most ``limit`` characters, else its head, ``...`` and 8 hex
    digits of its SHA-256 (so two long names stay different), ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 11]}...{digest}"


def _short(values: list[int]) -> str:
    shown = values if len(values) <= 6 else [*values[:3], "...", *values[-2:]]
    return "[" + ",".join(map(str, shown)) + "]"


def _model_key(settings: Settings, raw_model: Mapping[str, Any]) -> str:
    if raw_model.get("widths") is None and raw_model.get("depth") is not None:
        return f"model.depth={raw_model['depth']} / model.width={raw_model.get('width')}"
    return f"model.widths={_short(settings.model.widths)}"


def data_shape(settings: Settings) -> tuple[int, int] | None:
    """(samples, features) of the configured dataset, None where unknown before loading."""
    ds = settings.dataset
    if ds.name in FIXED_SIZES:
        return FIXED_SIZES[ds.name]
    n = ds.params.get("n_samples")
    if n is None:
        return None
    return int(n), int(ds.params.get("n_features", 2))


def estimate(settings: Settings) -> dict[str, int]:
    """Bytes: ``data`` (the float64 copies a load makes, then the run's dtype) and
    ``network`` (parameters, gradients and optimizer state in the run's dtype, the float64
    draws of the init, one batch's activations and deltas, an evaluation chunk)."""
    item = np.dtype(settings.backend.dtype).itemsize
    shape = data_shape(settings)
    n, d = shape if shape else (0, 0)
    out = {"data": n * (d + 1) * (8 * DATA_COPIES + item)}
    sizes = [max(d, 1), *settings.model.widths, 2]  # 2 classes: a lower bound
    params = parameter_count(sizes)
    state = OPTIMIZER_STATE.get(settings.optimizer.name, 3)
    batch = min(settings.trainer.batch_size, n) if n else settings.trainer.batch_size
    chunk = min(4096, n) if n else 4096
    out["network"] = (
        params * (item * (2 + state) + 8)
        + batch * sum(sizes) * item * 4
        + chunk * max(sizes) * item * 3
    )
    return out


def check_sizes(settings: Settings, raw: Mapping[str, Any]) -> None:
    """ConfigError (one line, naming the key) when the run cannot fit; ``raw`` is the
    resolved config (to tell ``model.widths`` from the depth/width shorthand)."""
    raw_model = raw.get("model") or {}
    hidden = len(settings.model.widths)
    if hidden > MAX_HIDDEN_LAYERS:
        key = _model_key(settings, raw_model)
        raise ConfigError(
            f"{key} asks for {hidden} hidden layers; at most {MAX_HIDDEN_LAYERS} are "
            "supported (each one is a Python-level step of every forward and backward pass)"
        )
    need = estimate(settings)
    total = need["data"] + need["network"]
    where, available = "of RAM", available_ram()
    backend = settings.backend
    if backend.name in ("torch", "cupy") and backend.device == "cuda":
        try:
            importlib.import_module(backend.name)
        except ImportError:
            pass  # build() says so, with its own line
        gpu = available_gpu_memory(backend.name)
        if gpu is not None:
            where, available = "on the GPU", gpu
    if available is None or total <= available:
        return
    if need["data"] >= need["network"]:
        ds = settings.dataset
        shape = data_shape(settings)
        key = (
            f"dataset.n_samples={ds.params.get('n_samples')}"
            if "n_samples" in ds.params
            else f"dataset={ds.name}"
        )
        what = f"the data ({shape[0]} x {shape[1]} values, with the copies a load makes)"
        fix = "use fewer dataset.n_samples (or dataset.n_features)"
    else:
        key = _model_key(settings, raw_model)
        d = (data_shape(settings) or (1, 1))[1]
        what = (
            f"the network ({parameter_count([d, *settings.model.widths, 2]):,}+ parameters "
            f"with gradients and {settings.optimizer.name} state, and the activations of a "
            f"batch and of an evaluation chunk, {backend.dtype})"
        )
        fix = "use smaller model.widths (or model.depth / model.width)"
    raise ConfigError(
        f"{key}: {what} needs about {format_bytes(total)} but only "
        f"{format_bytes(available)} {where} is available: {fix}"
    )


def check_parallelism(hydra_cfg: Any) -> str | None:
    """The message for a launcher's or sweeper's ``n_jobs`` that cannot work, else None.

    joblib takes a non-zero integer (-1: every CPU, -2: all but one ...; 0 "has no
    meaning"); Optuna's sweeper a positive one."""
    for group, key, low in (("launcher", "n_jobs", None), ("sweeper", "n_jobs", 1)):
        node = hydra_cfg.get(group) if hasattr(hydra_cfg, "get") else None
        value = node.get(key) if node is not None and hasattr(node, "get") else None
        if value is None:
            continue
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (value != 0 if low is None else value >= low)
        if not ok:
            accepted = "a positive integer" if low else "a non-zero integer (-1: every CPU)"
            return f"hydra.{group}.{key} must be {accepted}, got {value!r}"
    return None

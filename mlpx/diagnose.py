"""Why a run diverged: the likely cause named from the network and the optimizer
(issue 19, case 13), so the message says which key to change instead of always
"lower optimizer.lr".

Checked in this order, the first that holds is named:

1. the initial weights are far too large: ``max_l std(W_l) sqrt(p_(l-1))`` (about 1 for
   He/Glorot/LeCun) over :data:`INIT_SCALE_LIMIT` -> ``model.init_std`` / ``model.init``;
2. the schedule grows the learning rate: ``optimizer.schedule.gamma > 1`` (step,
   exponential);
3. ``optimizer.eps = 0`` in an adaptive rule (Adam, AdamW, RMSprop, Adagrad): a zero
   gradient and running average give ``0 / 0``;
4. otherwise the step size: ``optimizer.lr`` (and ``optimizer.clip_norm``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlpx.backend import to_numpy

#: ``std(W) sqrt(fan_in)`` above this is blamed on the init (He gives sqrt(2)).
INIT_SCALE_LIMIT = 100.0


def initial_scale(model: Any) -> float:
    """``max_l std(W_l) * sqrt(p_(l-1))`` of the network's current weights: how much each
    layer multiplies the scale of its inputs (``inf`` when a weight is not finite)."""
    scale = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for W in model.weights:
            w = to_numpy(W).astype(np.float64, copy=False)
            rms = math.sqrt(float(np.mean(w * w))) if w.size else 0.0
            scale = max(scale, rms * math.sqrt(w.shape[1]))
    return scale if math.isfinite(scale) else math.inf


def current_lr(optimizer: Any) -> float:
    """``optimizer.lr``, or ``inf`` when the schedule overflows (``gamma ** t``)."""
    try:
        return float(optimizer.lr)
    except OverflowError:
        return math.inf


def divergence_advice(optimizer: Any, init_scale: float | None = None) -> str:
    """What to change, as the tail of a divergence message (see the module docstring)."""
    if init_scale is not None and init_scale > INIT_SCALE_LIMIT:
        return (
            f"the initial weights are far too large (std(W) * sqrt(fan_in) = {init_scale:.3g}, "
            "about 1 for He/Glorot): lower model.init_std or use model.init=he_normal "
            "or glorot_uniform"
        )
    gamma = getattr(optimizer.schedule, "gamma", None)
    if gamma is not None and gamma > 1:
        return (
            f"optimizer.schedule.gamma={gamma:g} > 1 makes the learning rate grow "
            f"(now {current_lr(optimizer):g}): use optimizer.schedule.gamma <= 1"
        )
    if optimizer.hparams.get("eps") == 0:
        return (
            f"optimizer.eps=0 divides by zero where a gradient and its running average are "
            f"0 ({optimizer.name}): set optimizer.eps > 0 (e.g. 1e-8)"
        )
    return f"lower optimizer.lr (now {current_lr(optimizer):g}) or set optimizer.clip_norm"

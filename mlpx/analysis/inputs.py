"""Input gradients: ``delta_x = delta_f_0`` as saliency, attack direction and generator.

The lecture's backward pass ends at ``delta_f_0 = delta_a_1 W_1`` (B7 at l = 1), the
gradient of the loss for the input, and says to "use ``delta_x`` to generate data with
constraint". Training never needs it (it costs one more GEMM), so the model computes it
only when asked (``input_grad=True``). This module asks for it three ways:

* :func:`saliency`: ``|d loss_i / d x_i|``, which input features move each sample's loss;
* :func:`fgsm`, :func:`fgsm_accuracy`: the fast gradient sign attack,
  ``x + epsilon sign(delta_x)``, and the accuracy it leaves;
* :func:`class_visualisation`: gradient ascent on the input to maximise one logit under
  ``||x||_2 <= norm_bound``.

Arrays of any backend go in (``net.xp``: NumPy, torch, CuPy, array_api_strict); the
results come back as NumPy arrays or floats. Every function overwrites the network's
forward cache and leaves its weights alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpx.backend import to_numpy
from mlpx.nn.losses import one_hot
from mlpx.nn.model import MLP

Array = Any

__all__ = [
    "adversarial_metrics",
    "class_visualisation",
    "fgsm",
    "fgsm_accuracy",
    "input_gradients",
    "saliency",
]


def input_gradients(net: MLP, X: Array, y: Array, *, batch_size: int = 4096) -> Array:
    """``delta_x`` scaled to each sample's own loss: ``d loss_i / d x_i``, (n, d).

    X : (n, d), y : (n,) labels. The backward pass gives the gradient of the batch mean
    ``(1/n) sum_i loss_i`` (a factor ``1/n`` in every row, B3); this multiplies each chunk
    back by its number of rows, so the values depend on neither n nor ``batch_size``.
    Returns an array of the network's backend.
    """
    X, y = net.check_data(X, y)
    xp = net.xp
    n = X.shape[0]
    parts = []
    for s in range(0, n, batch_size):
        e = min(s + batch_size, n)
        _, g = net.batch_loss_and_grads(X[s:e, ...], y[s:e], input_grad=True)
        parts.append(g.inputs * (e - s))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def saliency(net: MLP, X: Array, y: Array) -> np.ndarray:
    """``|d loss_i / d x_i|`` (n, d) as NumPy: how much each input feature moves the loss
    of its own sample (true labels ``y``). For images, reshape a row to the image."""
    return to_numpy(net.xp.abs(input_gradients(net, X, y)))


def _project(net: MLP, X: Array, X_adv: Array, epsilon: float, clip: Any) -> Array:
    """``X_adv`` moved back into the attack's feasible set: the max-norm ball
    ``[X - epsilon, X + epsilon]`` around each input, intersected with the data range
    ``clip = (low, high)`` (scalars or (d,)) when given.

    Computed as ``min(max(min(max(X_adv, low), high), X - epsilon), X + epsilon)``: the
    box comes last, so the result is never farther than epsilon from X (epsilon = 0 gives
    X unchanged), and it lies in the intersection whenever that is non-empty; a row
    outside the data range by more than epsilon moves epsilon toward it, no further.
    """
    xp = net.xp
    if clip is not None:
        lo, hi = (net.backend.asarray(np.asarray(v, dtype=np.float64), net.dtype) for v in clip)
        X_adv = xp.minimum(xp.maximum(X_adv, lo), hi)
    return xp.minimum(xp.maximum(X_adv, X - epsilon), X + epsilon)


def _epsilon(value: Any) -> float:
    eps = float(value)
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"epsilon must be a non-negative finite number, got {value!r}")
    return eps


def fgsm(
    net: MLP,
    X: Array,
    y: Array,
    epsilon: float,
    *,
    clip: tuple[Any, Any] | None = None,
    delta_x: Array | None = None,
) -> np.ndarray:
    """The fast gradient sign method: ``x + epsilon * sign(delta_x)``, (n, d) NumPy.

    X : (n, d), y : (n,). One step of size ``epsilon`` per feature (max-norm) in the
    direction that increases each sample's loss. ``clip = (low, high)`` (scalars or (d,)
    arrays, e.g. the training split's per-feature min and max) also keeps the result in
    the data range, intersected with the box ``|x_adv - x| <= epsilon`` (which always
    holds: epsilon = 0 returns X). Pass ``delta_x`` (from :func:`input_gradients`) to
    reuse it across epsilons.
    """
    xp = net.xp
    eps = _epsilon(epsilon)
    X, y = net.check_data(X, y)
    if delta_x is None:
        delta_x = input_gradients(net, X, y)
    return to_numpy(_project(net, X, X + eps * xp.sign(delta_x), eps, clip))


def fgsm_accuracy(
    net: MLP,
    X: Array,
    y: Array,
    epsilons: Sequence[float],
    *,
    clip: tuple[Any, Any] | None = None,
) -> dict[float, float]:
    """Accuracy on FGSM inputs at each epsilon: ``{epsilon: accuracy}``.

    ``delta_x`` is computed once on the clean inputs X (n, d) and reused for every epsilon
    (the one-step attack); epsilon = 0 gives the clean accuracy. Epsilons are in the units
    of X (standard deviations for standardised data); ``clip`` as in :func:`fgsm`.
    """
    xp = net.xp
    X, y = net.check_data(X, y)
    direction = xp.sign(input_gradients(net, X, y))
    out = {}
    for value in epsilons:
        eps = _epsilon(value)
        X_adv = _project(net, X, X + eps * direction, eps, clip)
        out[eps] = net.evaluate(X_adv, y, validate=False)[1]
    return out


def adversarial_metrics(accuracy: Mapping[float, float]) -> dict[str, float]:
    """``{"adversarial/accuracy_eps_<e>": acc}`` from :func:`fgsm_accuracy` (``e`` as
    ``%g``: 0, 0.05, 0.1)."""
    return {f"adversarial/accuracy_eps_{eps:g}": float(acc) for eps, acc in accuracy.items()}


def class_visualisation(
    net: MLP,
    *,
    steps: int = 100,
    lr: float = 0.1,
    norm_bound: float | None = None,
    classes: Sequence[int] | None = None,
) -> np.ndarray:
    """Inputs that maximise each class's logit under ``||x||_2 <= norm_bound``, (k, d).

    The lecture's "use delta_x to generate data with constraint": projected gradient
    ascent on the input. Each of the k rows starts at 0 (the mean of standardised data);
    a forward pass, then ``backward(delta_f = one-hot(c))`` gives
    ``delta_x = d f_(L,c) / dx`` for every class at once; each step is::

        x <- x + lr * norm_bound * delta_x / ||delta_x||_2
        x <- x * norm_bound / max(||x||_2, norm_bound)      (back onto the ball)

    ``norm_bound`` defaults to ``sqrt(d)``, the typical norm of a standardised sample;
    ``classes`` defaults to all C.
    """
    d, C = net.sizes[0], net.sizes[-1]
    bound = math.sqrt(d) if norm_bound is None else float(norm_bound)
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"norm_bound must be a positive number, got {norm_bound!r}")
    cls = list(range(C)) if classes is None else [int(c) for c in classes]
    xp = net.xp
    x = net.backend.asarray(np.zeros((len(cls), d)), net.dtype)
    target = one_hot(net.backend.asarray(np.asarray(cls, dtype=np.int64)), C, x.dtype, xp)
    tiny = 1e-12
    for _ in range(steps):
        net.forward(x, validate=False)
        gx = net.backward(target, input_grad=True).inputs
        gnorm = xp.sqrt(xp.sum(gx * gx, axis=1, keepdims=True))
        x = x + (lr * bound) * gx / (gnorm + tiny)
        norm = xp.sqrt(xp.sum(x * x, axis=1, keepdims=True))
        x = x * (bound / xp.maximum(norm, xp.full_like(norm, bound)))
    return to_numpy(x)

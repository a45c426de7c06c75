"""Per-layer health of a network while it trains, as loggable numbers.

The lecture says ``delta_f`` and ``delta_a`` are "for debugging, interpreting results, and
visualizing the output of the network and its layers". At a logging step of the training
loop, :func:`health_metrics` turns the forward cache of the step's batch (``net.cache.a``,
``net.cache.f``), its deltas and the weights before and after the update into one float per
layer and quantity; :func:`weight_snapshot` keeps the weights before the update.

Layers are numbered l = 1..L as in the lecture; the keys are ``<name>/layer_<l>``.
Everything is computed on the network's own array namespace (``net.xp``: NumPy, torch,
CuPy, array_api_strict) and reaches the host in one transfer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlpx.backend import to_numpy
from mlpx.nn.activations import Activation
from mlpx.nn.model import MLP, Gradients

Array = Any

__all__ = ["SATURATION", "health_metrics", "saturated", "tail_limits", "weight_snapshot"]

#: A unit of a saturating activation counts as saturated where ``f = phi(a)`` is within
#: ``SATURATION`` of one of phi's limits at ``a -> -inf`` or ``+inf``: ``|tanh| > 0.99``,
#: ``sigmoid < 0.01`` or ``> 0.99``. There ``phi'`` is below 2% (tanh) or 4% (sigmoid) of
#: its value at 0, so almost no gradient passes.
SATURATION = 0.01

# phi(+-_FAR) and phi(+-2 _FAR) agree to the last bit when phi has a limit on that side
# (tanh(1000) == 1.0, sigmoid(-1000) == 0.0 in float64); unbounded sides differ.
_FAR = 1e3


def weight_snapshot(net: MLP) -> list[Array]:
    """Copies of ``W_1 .. W_L`` (each (p_l, p_(l-1))) on the network's device.

    Take one just before ``optimizer.step`` at a logging step (a copy on the device, no
    transfer to the host), then pass it to :func:`health_metrics` as ``before``: the
    update ratio is then measured exactly.
    """
    xp = net.xp
    return [xp.asarray(W, copy=True) for W in net.weights]


def tail_limits(act: Activation) -> tuple[float, float]:
    """``(phi(-inf), phi(+inf))`` of an activation; ``nan`` on a side where phi is unbounded.

    Read off phi itself (NumPy float64 at ``a = +-1e3`` and ``+-2e3``), so a new activation
    needs no entry anywhere else: tanh gives ``(-1, 1)``, sigmoid ``(0, 1)``, relu
    ``(0, nan)``.
    """
    a = np.array([-_FAR, -2 * _FAR, _FAR, 2 * _FAR])
    with np.errstate(all="ignore"):  # exp(1000) in an unbounded tail: that side is nan anyway
        f = np.asarray(act.forward(a, np), dtype=np.float64)
    lo = float(f[0]) if f[0] == f[1] and math.isfinite(f[0]) else math.nan
    hi = float(f[2]) if f[2] == f[3] and math.isfinite(f[2]) else math.nan
    return lo, hi


def saturated(act: Activation, a: Array, f: Array, xp: Any) -> Array:
    """Boolean (n, p_l): which entries of ``f = phi(a)`` sit in a flat tail of phi.

    a, f : (n, p_l) the layer's pre-activations and outputs. An entry is saturated when
    ``f`` is within :data:`SATURATION` of a finite limit of phi (:func:`tail_limits`):
    ``f < phi(-inf) + SATURATION`` or ``f > phi(+inf) - SATURATION``. An activation with
    no finite limit counts entries where ``|phi'(a)| < SATURATION * |phi'(0)|``.
    """
    lo, hi = tail_limits(act)
    if math.isnan(lo) and math.isnan(hi):
        zero = xp.zeros_like(a[:1, ...])
        d0 = act.grad(zero, act.forward(zero, xp), xp)
        return xp.abs(act.grad(a, f, xp)) < SATURATION * xp.abs(d0)
    if math.isnan(hi):
        return f < lo + SATURATION
    if math.isnan(lo):
        return f > hi - SATURATION
    return (f < lo + SATURATION) | (f > hi - SATURATION)


def _fro(x: Array, xp: Any) -> Array:
    """``||x||_F = sqrt(sum x^2)`` as a 0-d array on the device."""
    return xp.sqrt(xp.sum(x * x))


def health_metrics(
    net: MLP, g: Gradients | None = None, *, before: Sequence[Array] | None = None
) -> dict[str, float]:
    """Per-layer health of the network after a training step, as loggable floats.

    Reads the forward cache of the last forward pass (the step's batch of n rows:
    ``net.cache.a[l-1] = a_l`` and ``net.cache.f[l] = f_l``, each (n, p_l)), the deltas
    ``g`` of that batch and the current weights. For l = 1..L:

    * ``health/weight_norm/layer_<l>``: ``||W_l||_F`` (current weights);
    * ``health/update_ratio/layer_<l>`` (with ``before``, the :func:`weight_snapshot` taken just
      before the step): ``||W_l - W_l^before||_F / ||W_l^before||_F``; ~1e-3 is the
      usual healthy order, 1e-1 too fast, 1e-6 stalled;
    * ``health/delta_a_norm/layer_<l>`` (with ``g``): ``||delta_a_l||_F`` over the batch;
    * ``health/activation_mean/layer_<l>``, ``health/activation_std/layer_<l>``: of every entry of
      ``f_l`` (n, p_l) over the batch (l = L: the logits);
    * ``health/dead_units/layer_<l>`` for relu-like layers (``act.relu_like``: relu, leaky_relu,
      elu, gelu, silu): the fraction of the layer's p_l units with ``a_l <= 0`` for every
      sample of the batch (for relu: zero output and zero gradient on the whole batch);
    * ``health/saturated_units/layer_<l>`` for saturating layers (``act.saturating``: sigmoid,
      tanh): the fraction of entries of ``f_l`` (unit x sample) in a flat tail, see
      :func:`saturated`.

    A zero ``W_l^before`` gives an infinite or NaN ratio, without a warning.
    """
    cache = net.cache
    if len(cache.f) != net.num_layers + 1:
        raise RuntimeError(
            "health_metrics reads the forward cache of a batch: call net.forward(X) "
            "(or a training step) first"
        )
    xp = net.xp
    keys: list[str] = []
    values: list[Array] = []

    def put(key: str, value: Array) -> None:
        keys.append(key)
        values.append(xp.reshape(value, (1,)))

    with np.errstate(divide="ignore", invalid="ignore"):  # a zero W_l gives inf/NaN ratios
        for i, (W, act) in enumerate(zip(net.weights, net.activation_fns)):
            l = i + 1
            put(f"health/weight_norm/layer_{l}", _fro(W, xp))
            if before is not None:
                W0 = before[i]
                put(f"health/update_ratio/layer_{l}", _fro(W - W0, xp) / _fro(W0, xp))
            if g is not None:
                put(f"health/delta_a_norm/layer_{l}", _fro(g.pre_activations[i], xp))
            a, f = cache.a[i], cache.f[l]
            put(f"health/activation_mean/layer_{l}", xp.mean(f))
            put(f"health/activation_std/layer_{l}", xp.std(f))
            if act.relu_like:
                dead = xp.all(a <= 0, axis=0)
                put(f"health/dead_units/layer_{l}", xp.mean(xp.astype(dead, f.dtype)))
            elif act.saturating:
                flat = xp.astype(saturated(act, a, f, xp), f.dtype)
                put(f"health/saturated_units/layer_{l}", xp.mean(flat))
    host = to_numpy(xp.concat(values)) if values else np.zeros(0)
    return {k: float(v) for k, v in zip(keys, host)}

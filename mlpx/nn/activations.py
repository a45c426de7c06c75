"""Activation functions ``f = phi(a)`` with their derivatives beside them.

Each activation is applied elementwise, so the lecture's Jacobian ``J_f(a)`` (B4) is the
diagonal matrix ``diag(phi'(a))`` and ``delta_a = delta_f J_f(a)`` is the elementwise
product ``delta_f * phi'(a)``: the diagonal matrix is never built.

``grad(a, f, xp)`` returns ``phi'(a)`` written, where it can be, from the output ``f``
that the forward pass already computed (``sigmoid' = f (1 - f)``, ``tanh' = 1 - f^2``,
``relu' = [f > 0]``), as scikit-learn's ``_base.py`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlpx.backend import is_numpy

Array = Any

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: ``forward(a, xp) -> f`` and ``grad(a, f, xp) -> phi'(a)``.

    ``delta(df, a, f, xp)`` returns ``delta_a = delta_f * phi'(a)`` (B7's first formula
    with the diagonal Jacobian); activations whose derivative is 0/1 override it to avoid
    materialising ``phi'(a)``.
    """

    name: str
    forward: Callable[[Array, Any], Array]
    grad: Callable[[Array, Array, Any], Array]
    formula: str
    relu_like: bool = False
    saturating: bool = False

    def delta(self, df: Array, a: Array, f: Array, xp: Any) -> Array:
        """``delta_a = delta_f * phi'(a)`` as a new array, ``(n, p_l)``."""
        if self.name == "linear":
            return df
        if self.name == "relu":
            if is_numpy(xp):  # ~15x faster than a boolean-mask write
                return xp.multiply(df, f > 0)
            return df * xp.astype(f > 0, df.dtype)
        return df * self.grad(a, f, xp)

    def __repr__(self) -> str:
        return f"Activation({self.name!r}: {self.formula})"


def _sigmoid(a: Array, xp: Any) -> Array:
    """Stable logistic sigmoid: ``1/(1+e^-a)`` for a >= 0, ``e^a/(1+e^a)`` otherwise.

    Only ``exp(-|a|)`` is evaluated, which never overflows (|a| = 1000 gives no warning).
    """
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _relu(a: Array, xp: Any) -> Array:
    return xp.maximum(a, xp.zeros_like(a)) if not is_numpy(xp) else xp.maximum(a, 0)


def _softplus(a: Array, xp: Any) -> Array:
    """``log(1 + e^a) = max(a, 0) + log1p(e^-|a|)`` without overflow."""
    return _relu(a, xp) + xp.log1p(xp.exp(-xp.abs(a)))


def _elu(a: Array, xp: Any) -> Array:
    neg = xp.where(a > 0, xp.zeros_like(a), a)  # expm1 of a clipped copy: no overflow
    return xp.where(a > 0, a, ELU_ALPHA * xp.expm1(neg))


def _gelu_tanh(a: Array, xp: Any) -> Array:
    return xp.tanh(_GELU_K * (a + _GELU_C * a * a * a))


def _gelu(a: Array, xp: Any) -> Array:
    return 0.5 * a * (1.0 + _gelu_tanh(a, xp))


def _gelu_grad(a: Array, f: Array, xp: Any) -> Array:
    t = _gelu_tanh(a, xp)
    return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * _GELU_K * (1.0 + 3.0 * _GELU_C * a * a)


def _silu_grad(a: Array, f: Array, xp: Any) -> Array:
    s = _sigmoid(a, xp)
    return s * (1.0 + a * (1.0 - s))


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("linear", lambda a, xp: a, lambda a, f, xp: xp.ones_like(a), "phi(a) = a"),
        Activation(
            "sigmoid",
            _sigmoid,
            lambda a, f, xp: f * (1.0 - f),
            "phi(a) = 1/(1+e^-a); phi' = f(1-f)",
            saturating=True,
        ),
        Activation(
            "tanh",
            lambda a, xp: xp.tanh(a),
            lambda a, f, xp: 1.0 - f * f,
            "phi(a) = tanh(a) = 2 sigma(2a) - 1; phi' = 1 - f^2",
            saturating=True,
        ),
        Activation(
            "relu",
            _relu,
            lambda a, f, xp: xp.astype(f > 0, a.dtype),
            "phi(a) = max(0, a); phi' = [f > 0]",
            relu_like=True,
        ),
        Activation(
            "leaky_relu",
            lambda a, xp: xp.where(a > 0, a, LEAKY_SLOPE * a),
            lambda a, f, xp: xp.where(a > 0, xp.ones_like(a), xp.full_like(a, LEAKY_SLOPE)),
            f"phi(a) = max(a, {LEAKY_SLOPE} a); phi' = 1 or {LEAKY_SLOPE}",
            relu_like=True,
        ),
        Activation(
            "elu",
            _elu,
            lambda a, f, xp: xp.where(a > 0, xp.ones_like(a), f + ELU_ALPHA),
            f"phi(a) = a if a > 0 else {ELU_ALPHA}(e^a - 1); phi' = 1 or f + {ELU_ALPHA}",
            relu_like=True,
        ),
        Activation(
            "gelu",
            _gelu,
            _gelu_grad,
            "phi(a) = a/2 (1 + tanh(sqrt(2/pi)(a + 0.044715 a^3))) (tanh approximation)",
            relu_like=True,
        ),
        Activation(
            "softplus",
            _softplus,
            lambda a, f, xp: -xp.expm1(-f),  # sigma(a) = 1 - e^-softplus(a)
            "phi(a) = log(1 + e^a); phi' = sigma(a) = 1 - e^-f",
        ),
        Activation(
            "silu",
            lambda a, xp: a * _sigmoid(a, xp),
            _silu_grad,
            "phi(a) = a sigma(a); phi' = sigma(a)(1 + a(1 - sigma(a)))",
            relu_like=True,
        ),
    )
}


def get_activation(name: str, *, key: str = "activation") -> Activation:
    """Look ``name`` up in :data:`ACTIVATIONS`; unknown names raise ``ValueError``."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"{key} must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]

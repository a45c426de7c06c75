"""Activation functions ``f = phi(a)``, each with its derivative beside it.

Each activation is applied elementwise, so the lecture's Jacobian ``J_f(a)`` (B4) is the
diagonal matrix ``diag(phi'(a))`` and ``delta_a = delta_f J_f(a)`` is the elementwise
product ``delta_f * phi'(a)``: the diagonal matrix is never built.

Every activation is three named module-level functions (so networks pickle):

* ``<name>(a, xp) -> f``, the forward map;
* ``<name>_grad(a, f, xp) -> phi'(a)``, written, where it can be, from the output ``f``
  that the forward pass already computed (``sigmoid' = f (1 - f)``, ``tanh' = 1 - f^2``,
  ``relu' = [f > 0]``), as scikit-learn's ``_base.py`` does;
* ``<name>_delta(df, a, f, xp) -> delta_a = delta_f * phi'(a)``, the backward step of B7.
  Most are ``df * <name>_grad(...)``; ``linear`` returns ``df`` itself and ``relu``
  multiplies by the mask ``[f > 0]`` without building ``phi'(a)`` as a float array first.

Arrays are ``(n, p_l)``; ``xp`` is the array namespace (:mod:`mlpx.backend`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
GELU_K = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: its forward map, derivative and backward step.

    forward(a, xp) -> f; grad(a, f, xp) -> phi'(a); delta(df, a, f, xp) -> delta_a.
    ``relu_like`` (units can die: phi' = 0 on a half-line) and ``saturating`` (phi' -> 0 at
    both ends) tell the health metrics what to watch. Pickles as its registry name.
    """

    name: str
    forward: Callable[[Array, Any], Array]
    grad: Callable[[Array, Array, Any], Array]
    delta: Callable[[Array, Array, Array, Any], Array]
    formula: str
    relu_like: bool = False
    saturating: bool = False

    def __repr__(self) -> str:
        return f"Activation({self.name!r}: {self.formula})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (get_activation, (self.name,))


# ----------------------------------------------------------------------------- linear
def linear(a: Array, xp: Any) -> Array:
    """``phi(a) = a``."""
    return a


def linear_grad(a: Array, f: Array, xp: Any) -> Array:
    return xp.ones_like(a)


def linear_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    """``delta_a = delta_f``: the same array (the Jacobian is the identity)."""
    return df


# ---------------------------------------------------------------------------- sigmoid
def sigmoid(a: Array, xp: Any) -> Array:
    """Stable logistic sigmoid: ``1/(1+e^-a)`` for a >= 0, ``e^a/(1+e^a)`` otherwise.

    Only ``exp(-|a|)`` is evaluated, which never overflows (|a| = 1000 gives no warning).
    """
    e = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = f (1 - f)``."""
    return f * (1.0 - f)


def sigmoid_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * sigmoid_grad(a, f, xp)


# ------------------------------------------------------------------------------- tanh
def tanh(a: Array, xp: Any) -> Array:
    """``phi(a) = tanh(a) = 2 sigma(2a) - 1``."""
    return xp.tanh(a)


def tanh_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = 1 - f^2``."""
    return 1.0 - f * f


def tanh_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * tanh_grad(a, f, xp)


# ------------------------------------------------------------------------------- relu
def relu(a: Array, xp: Any) -> Array:
    """``phi(a) = max(0, a)``."""
    return xp.maximum(a, xp.zeros_like(a))


def relu_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = [f > 0]`` (0 at a = 0, as torch and scikit-learn)."""
    return xp.astype(f > 0, a.dtype)


def relu_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    """``delta_a = delta_f * [f > 0]``: a mask, never a boolean-indexed write (~15x slower)."""
    return df * xp.astype(f > 0, df.dtype)


# ------------------------------------------------------------------------- leaky relu
def leaky_relu(a: Array, xp: Any) -> Array:
    """``phi(a) = max(a, 0.01 a)``."""
    return xp.where(a > 0, a, LEAKY_SLOPE * a)


def leaky_relu_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = 1`` for a > 0, else 0.01."""
    return xp.where(a > 0, xp.ones_like(a), xp.full_like(a, LEAKY_SLOPE))


def leaky_relu_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * leaky_relu_grad(a, f, xp)


# -------------------------------------------------------------------------------- elu
def elu(a: Array, xp: Any) -> Array:
    """``phi(a) = a`` for a > 0, else ``alpha (e^a - 1)``; ``expm1`` of a clipped copy."""
    neg = xp.where(a > 0, xp.zeros_like(a), a)  # no overflow for large positive a
    return xp.where(a > 0, a, ELU_ALPHA * xp.expm1(neg))


def elu_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = 1`` for a > 0, else ``f + alpha``."""
    return xp.where(a > 0, xp.ones_like(a), f + ELU_ALPHA)


def elu_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * elu_grad(a, f, xp)


# ------------------------------------------------------------------------------- gelu
def gelu_tanh(a: Array, xp: Any) -> Array:
    """``tanh(sqrt(2/pi) (a + 0.044715 a^3))``, shared by GELU and its derivative."""
    return xp.tanh(GELU_K * (a + GELU_C * a * a * a))


def gelu(a: Array, xp: Any) -> Array:
    """``phi(a) = a/2 (1 + tanh(sqrt(2/pi)(a + 0.044715 a^3)))`` (tanh approximation)."""
    return 0.5 * a * (1.0 + gelu_tanh(a, xp))


def gelu_grad(a: Array, f: Array, xp: Any) -> Array:
    t = gelu_tanh(a, xp)
    return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * GELU_C * a * a)


def gelu_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * gelu_grad(a, f, xp)


# --------------------------------------------------------------------------- softplus
def softplus(a: Array, xp: Any) -> Array:
    """``log(1 + e^a) = max(a, 0) + log1p(e^-|a|)`` without overflow."""
    return relu(a, xp) + xp.log1p(xp.exp(-xp.abs(a)))


def softplus_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = sigma(a) = 1 - e^-f``."""
    return -xp.expm1(-f)


def softplus_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * softplus_grad(a, f, xp)


# ------------------------------------------------------------------------------- silu
def silu(a: Array, xp: Any) -> Array:
    """``phi(a) = a sigma(a)``."""
    return a * sigmoid(a, xp)


def silu_grad(a: Array, f: Array, xp: Any) -> Array:
    """``phi' = sigma(a)(1 + a(1 - sigma(a)))``."""
    s = sigmoid(a, xp)
    return s * (1.0 + a * (1.0 - s))


def silu_delta(df: Array, a: Array, f: Array, xp: Any) -> Array:
    return df * silu_grad(a, f, xp)


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in (
        Activation("linear", linear, linear_grad, linear_delta, "phi(a) = a"),
        Activation(
            "sigmoid",
            sigmoid,
            sigmoid_grad,
            sigmoid_delta,
            "phi(a) = 1/(1+e^-a); phi' = f(1-f)",
            saturating=True,
        ),
        Activation(
            "tanh",
            tanh,
            tanh_grad,
            tanh_delta,
            "phi(a) = tanh(a) = 2 sigma(2a) - 1; phi' = 1 - f^2",
            saturating=True,
        ),
        Activation(
            "relu",
            relu,
            relu_grad,
            relu_delta,
            "phi(a) = max(0, a); phi' = [f > 0]",
            relu_like=True,
        ),
        Activation(
            "leaky_relu",
            leaky_relu,
            leaky_relu_grad,
            leaky_relu_delta,
            f"phi(a) = max(a, {LEAKY_SLOPE} a); phi' = 1 or {LEAKY_SLOPE}",
            relu_like=True,
        ),
        Activation(
            "elu",
            elu,
            elu_grad,
            elu_delta,
            f"phi(a) = a if a > 0 else {ELU_ALPHA}(e^a - 1); phi' = 1 or f + {ELU_ALPHA}",
            relu_like=True,
        ),
        Activation(
            "gelu",
            gelu,
            gelu_grad,
            gelu_delta,
            "phi(a) = a/2 (1 + tanh(sqrt(2/pi)(a + 0.044715 a^3))) (tanh approximation)",
            relu_like=True,
        ),
        Activation(
            "softplus",
            softplus,
            softplus_grad,
            softplus_delta,
            "phi(a) = log(1 + e^a); phi' = sigma(a) = 1 - e^-f",
        ),
        Activation(
            "silu",
            silu,
            silu_grad,
            silu_delta,
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

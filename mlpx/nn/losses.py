"""Softmax and cross-entropy (the lecture's output block) and their derivative.

For one sample with logits ``f = f_L`` (C,), one-hot label ``y`` (C,):

    mu = S(f),  mu_i = e^{f_i} / sum_c e^{f_c}          (softmax)
    l  = -y^T log(mu)                                     (cross-entropy)

Batched, rows are samples: logits ``F`` (n, C), labels ``y`` (n,) integers in 0..C-1,
and the loss is the batch mean. Softmax and ``log mu`` go through log-sum-exp, so large
logits neither overflow nor give ``log(0)``.
"""

from __future__ import annotations

import math
from typing import Any

from mlpx.backend import device_of, is_numpy, namespace_of

Array = Any


def log_softmax(logits: Array) -> Array:
    """``log S(f) = f - logsumexp(f)`` row by row. logits: (n, C) -> (n, C)."""
    xp = namespace_of(logits)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax(logits: Array) -> Array:
    """``mu = S(f)`` row by row, computed from the max-shifted logits. (n, C) -> (n, C)."""
    xp = namespace_of(logits)
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def one_hot(y: Array, num_classes: int, dtype: Any, xp: Any) -> Array:
    """One-hot rows ``Y[i, y_i] = 1``. y: (n,) integers -> (n, C)."""
    if is_numpy(xp):
        classes = xp.arange(num_classes)
    else:
        classes = xp.arange(num_classes, device=device_of(y))
    return xp.astype(y[:, None] == classes[None, :], dtype)


def cross_entropy_and_delta(logits: Array, y: Array) -> tuple[Array, Array]:
    """:func:`softmax_cross_entropy` with the loss kept as a 0-d array on the device.

    logits : (n, C); y : (n,) integer labels. Log-sum-exp with the row maximum ``m`` and
    ``s = sum_c e^(f_c - m)``::

        loss    = mean_i (log s_i - (f_(i, y_i) - m_i))      = mean_i -log mu_(i, y_i)
        delta_f = e^(f - m) / (n s) - Y / n                  = (mu - Y) / n   (B3)

    (the NumPy fast path, :func:`mlpx.fast.step.cross_entropy_into`, does the same
    operations in kept buffers without building ``Y``, and gives the same bits).
    """
    xp = namespace_of(logits)
    n = logits.shape[0]
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    Y = one_hot(y, logits.shape[1], logits.dtype, xp)
    picked = xp.sum(shifted * Y, axis=1)  # f_(i, y_i) - m_i
    e = xp.exp(shifted)
    s = xp.sum(e, axis=1, keepdims=True)
    if n == 0:  # the mean of nothing: NaN, without a 0/0 warning
        return xp.sum(e) * math.nan, e
    loss = xp.sum(xp.log(s[:, 0]) - picked) / n
    delta = e / (s * n) - Y * (1.0 / n)
    return loss, delta


def softmax_cross_entropy(logits: Array, y: Array) -> tuple[float, Array]:
    """Mean cross-entropy of softmax(logits) and its gradient for the logits.

    Parameters
    ----------
    logits : (n, C) array, ``f_L`` for every sample.
    y : (n,) integer labels in ``0..C-1``.

    Returns
    -------
    loss : Python float, ``(1/n) sum_i -log mu_{i, y_i}``.
    delta_f : (n, C), the shortcut B3 ``delta_f = (mu - y) / n`` (the 1/n comes from the
        batch mean).
    """
    if logits.shape[0] == 0:
        raise ValueError("logits has no rows: the mean loss of an empty batch is undefined")
    loss, delta_f = cross_entropy_and_delta(logits, y)
    return float(loss), delta_f


def delta_f_jacobian_chain(logits: Array, y: Array) -> Array:
    """The lecture's general path B1-B3, kept as the reference for the shortcut.

    Per sample: ``delta_mu = -y^T / mu^T`` (B1), ``J_mu(f) = diag(mu) - mu mu^T`` (B2),
    ``delta_f = delta_mu J_mu(f)`` (B3); divided by n for the batch mean. It builds a
    (n, C, C) Jacobian, so it is for tests and teaching, not for training.

    logits: (n, C), y: (n,) -> delta_f: (n, C).
    """
    xp = namespace_of(logits)
    n, C = logits.shape
    mu = softmax(logits)
    Y = one_hot(y, C, logits.dtype, xp)
    delta_mu = -Y / mu  # B1, (n, C)
    eye = xp.eye(C, dtype=logits.dtype, **({} if is_numpy(xp) else {"device": device_of(mu)}))
    J = mu[:, :, None] * eye[None, :, :] - mu[:, :, None] * mu[:, None, :]  # B2, (n, C, C)
    delta_f = xp.sum(delta_mu[:, :, None] * J, axis=1)  # B3: row vector times J
    return delta_f / n

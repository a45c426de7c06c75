"""Compiled kernels for the NumPy hot path (optional: ``pip install "mlpx[jit]"``, Numba).

A NumPy training step is a few GEMMs (BLAS) and a few dozen elementwise passes, each a
NumPy call of ~1 us overhead plus one trip through memory. On small networks the calls
dominate (digits, [64, 64, 10], batch 32: ~45 calls, ~60 us a step); on large ones the
passes do (Adam's dozen passes over 670k parameters). These kernels fuse the elementwise
parts into one loop each; the GEMMs stay NumPy's (the same BLAS calls either way).

=======================  ===========================================================
kernel                   replaces (NumPy calls)
=======================  ===========================================================
:func:`adam`             Adam / AdamW on the flat buffers: ~12 passes -> 1
:func:`sgd`, ...         SGD (momentum, Nesterov), RMSprop, Adagrad: 2-12 passes -> 1
:func:`bias_relu`        ``a += b``, ``f = max(a, 0)`` -> 1
:func:`relu_delta`       ``mask = f > 0``, ``delta_a = delta_f * mask`` -> 1
:func:`cross_entropy`    log-sum-exp, ``(mu - Y)/n``, argmax, hits: ~15 calls -> 1
=======================  ===========================================================

The optimizer kernels, :func:`bias_relu` and :func:`relu_delta` do the same IEEE
operations in the same order as the NumPy code they replace (coefficients are passed in
the arrays' dtype, as NumPy casts a Python float for a float32 array; no fused
multiply-add, no fast-math), so their results are bit-identical. :func:`cross_entropy`
uses the C library's ``exp`` and ``log`` and sums in another order: it agrees with the
NumPy path to a few ulps.

Whether they are used is ``backend.jit`` (``MLP(jit=...)``, ``make_optimizer(jit=...)``):
``auto`` (default) uses them when Numba is installed, ``true`` requires it, ``false``
never does. Compiled code is cached on disk (Numba's ``cache=True``): the first process
in an environment compiles (~1.5 s for both dtypes, measured by benchmarks/speed.py),
later ones load it (~0.4 s, ``import numba`` included).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from mlpx.checks import jit_setting

INSTALL_HINT = 'pip install "mlpx[jit]"'

_kernels: Any = None  # the compiled functions (a namespace), once built
_failure: str | None = None  # why loading Numba failed, once it has
_warned = False  # the auto fallback was reported
_logger = logging.getLogger(__name__)


class JitError(ValueError):
    """An unknown setting, ``jit=true`` without Numba, or a Numba that cannot be loaded."""


def available() -> bool:
    """Whether Numba is installed (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


def check_setting(value: Any, *, key: str = "backend.jit") -> str:
    """The canonical setting (``auto``, ``true``, ``false``) of ``value``, or a one-line
    :class:`JitError` naming ``key`` and the accepted values (:func:`mlpx.checks.jit_setting`)."""
    try:
        return jit_setting(value, key=key)
    except ValueError as exc:
        raise JitError(str(exc)) from None


def resolve(value: Any, *, key: str = "backend.jit") -> bool:
    """Whether the kernels are used for ``value`` (loading them if so).

    ``true`` raises :class:`JitError` when Numba is missing or cannot be loaded (a NumPy
    it does not support, a broken LLVM); ``auto`` then trains with NumPy alone and says
    why once (a warning), ``false`` never looks.
    """
    setting = check_setting(value, key=key)
    if setting == "false":
        return False
    if not available():
        if setting == "true":
            raise JitError(f"{key}=true needs Numba: {INSTALL_HINT} (or set {key}=auto)")
        return False
    try:
        get()
    except JitError as exc:
        if setting == "true":
            raise JitError(f"{key}=true: {exc}") from None
        global _warned
        if not _warned:
            _warned = True
            _logger.warning("%s=auto: %s; training with NumPy alone", key, exc)
        return False
    return True


def get() -> Any:
    """The compiled kernels (built, or loaded from Numba's cache, on the first call).

    Raises :class:`JitError` (one line) when Numba is installed but cannot be loaded.
    """
    global _kernels, _failure
    if _kernels is None:
        if _failure is not None:
            raise JitError(_failure)
        try:
            _kernels = _build()
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            _failure = (
                f"Numba is installed but could not be loaded ({type(exc).__name__}: {reason})"
            )
            raise JitError(_failure) from exc
    return _kernels


def _build() -> Any:
    import numba

    jit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def adam(p, g, m, v, vmax, c, amsgrad):  # pragma: no cover - compiled
        """One Adam/AdamW step on 1-d buffers, in place; ``c = [coupled, w, 1 - w, beta2,
        1 - beta2, eps, scale, decay, lerp]`` in the arrays' dtype (``lerp``: 1 if w < 0.5).

        The operations of ``mlpx.fast.optim``'s Adam passes (``Adam.update``) element by
        element::

            p *= decay                                 (AdamW; decay = 1 - lr wd)
            g' = p * coupled + g                       (Adam's L2 decay, coupled != 0)
            m  = m + (g' - m) w   |   (m - g') (1 - w) + g'      (w = 1 - beta1)
            v  = v beta2 + (g' (1 - beta2)) g'
            v^ = max(v^, v)                            (amsgrad)
            p  = p + (m / (sqrt(v^) + eps)) scale
        """
        coupled, w, w1, b2, b2c, eps, scale, decay = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
        lerp = c[8] != 0
        do_decay = decay != 1
        do_coupled = coupled != 0
        for i in range(p.shape[0]):
            pi = p[i]
            if do_decay:
                pi = pi * decay
            gi = g[i]
            if do_coupled:
                gi = pi * coupled + gi
            mi = m[i]
            if lerp:
                mi = mi + (gi - mi) * w
            else:
                mi = (mi - gi) * w1 + gi
            m[i] = mi
            vi = v[i] * b2 + (gi * b2c) * gi
            v[i] = vi
            if amsgrad:
                x = vmax[i]
                vi = x if x > vi else vi  # NaN in x or vi propagates, as np.maximum
                if x != x:
                    vi = x
                vmax[i] = vi
            p[i] = pi + (mi / (np.sqrt(vi) + eps)) * scale

    @jit
    def sgd(p, g, buf, c, wd_on, momentum_on, damp_on, nesterov):  # pragma: no cover
        """One SGD step on 1-d buffers, ``c = [wd, mu, 1 - dampening, lr]``; the order of
        ``mlpx.fast.optim``'s SGD passes (``SGD.update``)::

            g' = p wd + g;  b = b mu + g' (1 - dampening) | b mu + g'
            d = b mu + g' (nesterov) | b | g';  p = p - d lr
        """
        wd, mu, keep, lr = c[0], c[1], c[2], c[3]
        for i in range(p.shape[0]):
            gi = g[i]
            if wd_on:
                gi = p[i] * wd + gi
            if momentum_on:
                b = buf[i] * mu
                b = b + gi * keep if damp_on else b + gi
                buf[i] = b
                gi = b * mu + gi if nesterov else b
            p[i] = p[i] - gi * lr

    @jit
    def rmsprop(p, g, sq, ga, buf, c, wd_on, centered, lerp, momentum_on):  # pragma: no cover
        """One RMSprop step on 1-d buffers, ``c = [wd, alpha, 1 - alpha, 1 - alpha, alpha
        (as 1 - w), eps, momentum, lr, -lr]``; the order of ``mlpx.nn.optim.RMSprop.update``::

            g' = p wd + g;  s = s alpha + (g' (1 - alpha)) g'
            a = a + (g' - a) w | (a - g') (1 - w) + g'       (centered, w = 1 - alpha)
            r = sqrt(s - a a) | sqrt(s);  r = r + eps
            b = b momentum + g' / r;  p = p - lr b   |   p = p + (-lr g') / r
        """
        wd, alpha, one_m_alpha, w, w1 = c[0], c[1], c[2], c[3], c[4]
        eps, mom, lr, neg_lr = c[5], c[6], c[7], c[8]
        for i in range(p.shape[0]):
            gi = g[i]
            if wd_on:
                gi = p[i] * wd + gi
            s = sq[i] * alpha + (gi * one_m_alpha) * gi
            sq[i] = s
            if centered:
                a = ga[i]
                a = a + (gi - a) * w if lerp else (a - gi) * w1 + gi
                ga[i] = a
                r = np.sqrt(s - a * a)
            else:
                r = np.sqrt(s)
            r = r + eps
            if momentum_on:
                b = buf[i] * mom + gi / r
                buf[i] = b
                p[i] = p[i] - lr * b
            else:
                p[i] = p[i] + (neg_lr * gi) / r

    @jit
    def adagrad(p, g, acc, c, wd_on):  # pragma: no cover - compiled
        """One Adagrad step on 1-d buffers, ``c = [wd, -clr, eps]``; the order of
        ``mlpx.nn.optim.Adagrad.update``: ``g' = p wd + g``, ``S = S + g' g'``,
        ``p = p + (-clr g') / (sqrt(S) + eps)``."""
        wd, neg_clr, eps = c[0], c[1], c[2]
        for i in range(p.shape[0]):
            gi = g[i]
            if wd_on:
                gi = p[i] * wd + gi
            a = acc[i] + gi * gi
            acc[i] = a
            p[i] = p[i] + (neg_clr * gi) / (np.sqrt(a) + eps)

    @jit
    def bias_relu(a, b, f):  # pragma: no cover - compiled
        """``a += b`` (a: (n, p), b: (p,)) and ``f = max(a, 0)`` (NaN stays NaN)."""
        n, p = a.shape
        for i in range(n):
            for j in range(p):
                x = a[i, j] + b[j]
                a[i, j] = x
                f[i, j] = 0 if x <= 0 else x

    @jit
    def relu_delta(df, f, da):  # pragma: no cover - compiled
        """``delta_a = delta_f * (f > 0)`` for a relu layer, all (n, p)."""
        n, p = df.shape
        for i in range(n):
            for j in range(p):
                da[i, j] = df[i, j] * (f[i, j] > 0)

    @jit
    def cross_entropy(logits, y, delta, c):  # pragma: no cover - compiled
        """Mean softmax cross-entropy of (n, C) logits and labels y (n,), its delta
        ``(mu - Y) / n`` into ``delta`` (n, C), and the number of rows whose (first)
        largest logit is the label. ``c = [n, 1/n]`` in the logits' dtype. Returns
        ``(loss, hits)`` (the loss summed in float64), or ``(nan, -1)`` for a label
        outside ``0..C-1``."""
        n, C = logits.shape
        total = 0.0
        hits = 0
        n_, inv_n = c[0], c[1]
        for i in range(n):
            mx = logits[i, 0]
            arg = 0
            for k in range(1, C):
                x = logits[i, k]
                if x > mx:
                    mx = x
                    arg = k
            s = np.exp(logits[i, 0] - mx)
            delta[i, 0] = s
            for k in range(1, C):
                e = np.exp(logits[i, k] - mx)
                delta[i, k] = e
                s += e
            label = y[i]
            if label < 0 or label >= C:  # unchecked labels must not read out of bounds
                return math.nan, -1
            total += math.log(s) - (logits[i, label] - mx)
            hits += arg == label
            sn = s * n_
            for k in range(C):
                delta[i, k] = delta[i, k] / sn
            delta[i, label] -= inv_n
        return total / n, hits

    return SimpleNamespace(
        adam=adam,
        sgd=sgd,
        rmsprop=rmsprop,
        adagrad=adagrad,
        bias_relu=bias_relu,
        relu_delta=relu_delta,
        cross_entropy=cross_entropy,
    )

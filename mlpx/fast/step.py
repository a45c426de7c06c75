"""The NumPy hot path of a training step: :mod:`mlpx.nn.model`'s equations in kept buffers.

:class:`FastStep` runs the forward pass, the softmax cross-entropy and the backward pass
(B3, B7) of an :class:`mlpx.nn.model.MLP` on NumPy, the same operations in the same order
as the model's own code, but

* written with ``out=`` into buffers kept per batch size (a step allocates nothing large);
* with every parameter in one flat buffer ``W_1, b_1, W_2, b_2, ...`` (the network's
  ``weights[i]``/``biases[i]`` become views of it) and the gradients in another of the same
  layout, so that :class:`mlpx.fast.optim.FlatOptimizer` updates everything with a
  handful of whole-buffer operations;
* ``delta_b = ones^T delta_a`` as a GEMV (~2x faster than a sum over the rows);
* ReLU layers in place (``np.maximum(a, 0, out=f)``, ``delta_f * [f > 0]`` with a kept
  mask) and, with ``jit`` on, the compiled kernels of :mod:`mlpx.fast.kernels` (bias + ReLU,
  the ReLU delta, log-sum-exp + ``(mu - Y)/n`` + hit count in one pass each).

The results equal the model's (``tests/test_fast_step.py``): every delta, ``delta_W``,
the loss and the hit count bit for bit, except ``delta_b`` (a GEMV instead of a pairwise
sum: equal to ~1 ulp) and the values that depend on it.

The model knows nothing of this module: it only sees its ``weights``/``biases`` items
replaced by views (a plain list assignment) and its ``cache`` filled. Reassigning
``net.weights[i]`` afterwards is noticed at the next step (the new values are copied into
the flat buffer).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlpx.fast import kernels
from mlpx.fast.optim import FlatOptimizer, flat_views
from mlpx.nn.activations import relu
from mlpx.nn.model import MLP, ForwardCache, Gradients
from mlpx.nn.optim import Optimizer

#: Batch sizes whose buffers are kept (the batch size, the last short batch, ...).
MAX_WORKSPACES = 3


class CrossEntropyBuffers:
    """The (n,) scratch arrays of :func:`cross_entropy_into` for batches of ``n`` rows of
    ``C`` classes."""

    def __init__(self, n: int, C: int, dtype: Any) -> None:
        self.row_max = np.empty(n, dtype)
        self.row_sum = np.empty(n, dtype)
        self.scratch = np.empty(n, dtype)
        self.row_max_col = self.row_max.reshape(n, 1)  # views, for broadcasting over rows
        self.row_sum_col = self.row_sum.reshape(n, 1)
        self.row_starts = np.arange(n) * C
        self.at = np.empty(n, self.row_starts.dtype)


def cross_entropy_into(
    logits: np.ndarray, y: np.ndarray, delta: np.ndarray, work: CrossEntropyBuffers
) -> float:
    """:func:`mlpx.nn.losses.cross_entropy_and_delta` written into kept buffers.

    logits : (n, C), left untouched; y : (n,) integer labels. ``delta`` (n, C, C-contiguous)
    receives ``(mu - Y) / n``. Returns the mean cross-entropy as a float. The same
    log-sum-exp operations (no overflow, no ``log(0)``) in about a dozen NumPy calls on the
    small (n,) buffers of ``work``; the one-hot matrix is never built.
    """
    n = logits.shape[0]
    if n == 0:
        return math.nan
    np.maximum.reduce(logits, 1, None, work.row_max)
    np.subtract(logits, work.row_max_col, out=delta)  # shifted logits: every row's max is 0
    flat = delta.reshape(-1)
    at = np.add(work.row_starts, y, out=work.at)  # flat index of (i, y_i)
    picked = flat.take(at)  # shifted logit of the true class
    np.exp(delta, out=delta)
    s = np.add.reduce(delta, 1, None, work.row_sum)
    # -log mu_(i, y_i) = log(sum_c e^(shifted_ic)) - shifted_(i, y_i)
    log_s = np.log(s, out=work.scratch)
    loss = float(np.add.reduce(np.subtract(log_s, picked, out=log_s))) / n
    s *= n  # delta = e / (n s) - Y / n
    np.divide(delta, work.row_sum_col, out=delta)
    flat[at] -= 1.0 / n
    return loss


class Workspace:
    """The buffers of one batch size ``n``, reused by every step of that size.

    a[i], f[i + 1] (relu layers), df[i], da[i] (relu layers) : (n, p_l); ``X`` receives
    the gathered rows of the batch.
    """

    def __init__(self, net: MLP, n: int) -> None:
        dt = net.dtype
        widths = net.sizes[1:]
        fast = [is_relu(act) for act in net.activation_fns]
        self.n = n
        self.relu = fast
        self.a = [np.empty((n, p), dt) for p in widths]
        self.f: list[Any] = [None] + [
            np.empty((n, p), dt) if r else None for p, r in zip(widths, fast)
        ]
        self.zeros: list[Any] = []
        for p, r in zip(widths, fast):
            z = np.zeros((n, p), dt) if r else None
            if z is not None:
                z.flags.writeable = False  # relu's second operand; an array: ~5x faster than 0
            self.zeros.append(z)
        self.mask = [np.empty((n, p), bool) if r else None for p, r in zip(widths, fast)]
        self.df = [np.empty((n, p), dt) for p in widths]
        self.da = [np.empty((n, p), dt) if r else None for p, r in zip(widths, fast)]
        self.ones = np.ones(n, dt)  # delta_b = ones^T delta_a: a GEMV
        self.loss = CrossEntropyBuffers(n, net.sizes[-1], dt)
        self.pred = np.empty(n, np.intp)
        self.hits = np.empty(n, bool)
        self.ce_coef = np.array([n, 1 / n if n else 0.0], dt)  # [n, 1/n] of kernels.cross_entropy
        self.X: np.ndarray | None = None

    def gather(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``X[rows]`` written into a kept buffer (rows already checked by ``y[rows]``)."""
        buf = self.X
        if buf is None or buf.dtype != X.dtype or buf.shape[1:] != X.shape[1:]:
            buf = self.X = np.empty((self.n, *X.shape[1:]), X.dtype)
        # mode="wrap" is unbuffered (mode="raise" copies twice) and maps -1 to n - 1 as
        # X[rows] does; out-of-range rows were rejected by y[rows].
        return np.take(X, rows, axis=0, out=buf, mode="wrap")


def is_relu(act: Any) -> bool:
    """Whether the layer's activation is the lecture's ReLU (:func:`mlpx.nn.activations.relu`),
    which has an in-place version here; any other runs its own ``forward``/``delta``."""
    return act.forward is relu


class FastStep:
    """Training steps of a NumPy :class:`MLP` in kept buffers, with an optional optimizer.

    net : a NumPy network; its parameters move into one flat buffer ``self.params`` (the
        network's arrays become views of it; values unchanged).
    optimizer : an :mod:`mlpx.nn.optim` optimizer; :meth:`update` then runs its rule on the
        flat buffers (:class:`mlpx.fast.optim.FlatOptimizer`).

    ``self.grads`` is the flat gradient buffer; ``self.g`` the :class:`Gradients` of the
    last step, whose ``weights``/``biases`` are views of it.
    """

    def __init__(self, net: MLP, optimizer: Optimizer | None = None) -> None:
        if net.backend.name != "numpy":
            raise ValueError(f"FastStep runs NumPy networks only, got {net.backend!r}")
        self.net = net
        self.kernels = kernels.get() if kernels.resolve(net.jit, key="jit") else None
        self.shapes = [tuple(p.shape) for p in net.parameters()]
        self.params = np.empty(net.num_parameters, net.dtype)
        self.grads = np.empty(net.num_parameters, net.dtype)
        self._views: list[np.ndarray] = []
        self.adopt()
        gviews = flat_views(self.grads, self.shapes)
        self.g = Gradients(gviews[0::2], gviews[1::2])
        self.optimizer = (
            FlatOptimizer(optimizer, self.params, self.grads, self.shapes)
            if optimizer is not None
            else None
        )
        self._work: dict[int, Workspace] = {}

    def adopt(self) -> None:
        """Copy the network's parameters into the flat buffer and give it the views."""
        net = self.net
        net.check_parameters()
        views = flat_views(self.params, self.shapes)
        for view, p in zip(views, net.parameters()):
            view[...] = p
        for i in range(net.num_layers):
            net.weights[i] = views[2 * i]
            net.biases[i] = views[2 * i + 1]
        self._views = views

    def _adopted(self) -> bool:
        return all(p is v for p, v in zip(self.net.parameters(), self._views))

    def workspace(self, n: int) -> Workspace:
        """The buffers for batches of ``n`` rows (at most :data:`MAX_WORKSPACES` kept)."""
        work = self._work.get(n)
        if work is None or work.relu != [is_relu(a) for a in self.net.activation_fns]:
            if len(self._work) >= MAX_WORKSPACES:
                del self._work[next(iter(self._work))]
            work = self._work[n] = Workspace(self.net, n)
        return work

    def train_batch(
        self, X: np.ndarray, y: np.ndarray, rows: np.ndarray
    ) -> tuple[float, int, Gradients]:
        """Forward and backward pass on the rows ``rows`` of (X, y) (checked once with
        ``net.check_data``): ``(loss, correct, g)`` as :meth:`MLP.train_batch`, with the
        loss a float, ``correct`` an int and ``g`` this step's kept :class:`Gradients`
        (overwritten by the next step)."""
        if rows.dtype.kind not in "iu":
            raise ValueError(f"rows must be an integer index array, got dtype {rows.dtype}")
        if not self._adopted():  # net.weights[i] was reassigned since the last step
            self.adopt()
        yb = y[rows]  # also rejects out-of-range rows, before the unchecked gather below
        work = self.workspace(yb.shape[0])
        return self._step(work.gather(X, rows), yb, work)

    def loss_and_grads(self, X: np.ndarray, y: np.ndarray) -> tuple[float, Gradients]:
        """:meth:`MLP.loss_and_grads` through the fast path (checks included)."""
        X, y = self.net.check_data(X, y)
        if not self._adopted():
            self.adopt()
        loss, _, g = self._step(X, y, self.workspace(X.shape[0]))
        return loss, g

    def update(self) -> None:
        """One optimizer step from the gradients of the last :meth:`train_batch`."""
        if self.optimizer is None:
            raise RuntimeError("FastStep was built without an optimizer")
        self.optimizer.step()

    # ------------------------------------------------------------------ the step
    def _step(self, X: np.ndarray, y: np.ndarray, work: Workspace) -> tuple[float, int, Gradients]:
        logits = self._forward(X, work)
        k = self.kernels
        delta_f = work.df[-1]
        hit_count: int | None = None
        if k is not None and work.n > 0:  # also counts the hits
            loss, hit_count = k.cross_entropy(logits, y, delta_f, work.ce_coef)
            if hit_count < 0:
                raise ValueError(f"labels must be integers in 0..{self.net.sizes[-1] - 1}")
        else:
            loss = cross_entropy_into(logits, y, delta_f, work.loss)
        g = self._backward(work)
        if hit_count is None:
            logits.argmax(axis=1, out=work.pred)  # methods: no dispatch layer, ~3x faster
            hit_count = int(np.count_nonzero(np.equal(work.pred, y, out=work.hits)))
        return loss, hit_count, g

    def _forward(self, X: np.ndarray, work: Workspace) -> np.ndarray:
        """``a_l = f_(l-1) W_l^T + b_l``, ``f_l = phi_l(a_l)`` into ``work``'s buffers."""
        net, k = self.net, self.kernels
        A, F = work.a, list(work.f)
        F[0] = f = X
        for i, (W, b, act) in enumerate(zip(net.weights, net.biases, net.activation_fns)):
            a = np.matmul(f, W.T, out=A[i])
            if work.relu[i] and k is not None:  # a += b; f = max(a, 0), one pass
                f = F[i + 1]
                k.bias_relu(a, b, f)
                continue
            a += b
            if work.relu[i]:  # f_l in its own buffer: a_l stays readable (net.cache.a)
                f = np.maximum(a, work.zeros[i], out=F[i + 1])
            else:
                f = F[i + 1] = act.forward(a, np)
        net.cache = ForwardCache(A, F)
        return f

    def _backward(self, work: Workspace) -> Gradients:
        """B7 for l = L .. 1 into ``self.grads`` and ``work``'s delta buffers."""
        net, k, g = self.net, self.kernels, self.g
        A, F = net.cache.a, net.cache.f
        L = net.num_layers
        das: list[Any] = [None] * L
        dfs: list[Any] = [None] * L
        df = work.df[-1]
        for i in range(L - 1, -1, -1):
            dfs[i] = df
            if work.relu[i] and k is not None:
                da = work.da[i]
                k.relu_delta(df, F[i + 1], da)
            elif work.relu[i]:  # delta_f * [f > 0]: ~15x faster than df[f <= 0] = 0
                mask = np.greater(F[i + 1], 0, out=work.mask[i])
                da = np.multiply(df, mask, out=work.da[i])
            else:
                da = net.activation_fns[i].delta(df, A[i], F[i + 1], np)
            das[i] = da
            np.matmul(da.T, F[i], out=g.weights[i])
            np.matmul(work.ones, da, out=g.biases[i])  # delta_b = sum over the samples
            if i > 0:
                df = np.matmul(da, net.weights[i], out=work.df[i - 1])
        g.pre_activations, g.activations, g.inputs = das, dfs, None
        return g

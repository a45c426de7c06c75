"""The lecture's multilayer perceptron, with hand-written backpropagation.

Forward (rows are samples, ``f_0 = X``)::

    a_l = f_(l-1) W_l^T + b_l      (n, p_l)     the lecture's a_l = W_l f_(l-1)
    f_l = phi_l(a_l)               (n, p_l)
    mu  = S(f_L),  loss = mean_i -log mu_(i, y_i)

``W_l`` has the lecture's shape ``(p_l, p_(l-1))``. The lecture folds the bias into ``W``
by appending a 1 to the input (``x = [x; 1]``, ``p_0 = d + 1``); mlpx keeps the last
column apart as ``b_l`` (p_l,), which is the same map: ``[W_l | b_l] [f; 1] = W_l f + b_l``.

Backward (B3, B7), for l = L .. 1::

    delta_f_L = (mu - Y) / n                     (softmax + cross-entropy shortcut, B3)
    delta_a_l = delta_f_l * phi_l'(a_l)          (diagonal J_f(a): elementwise)
    delta_W_l = delta_a_l^T f_(l-1)              (p_l, p_(l-1))
    delta_b_l = sum over samples of delta_a_l    (p_l,)
    delta_f_(l-1) = delta_a_l W_l                (n, p_(l-1)); delta_x = delta_f_0

The ``1/n`` makes every delta the gradient of the batch-mean loss.

On NumPy the parameters live in one flat buffer, ``W_1, b_1, W_2, b_2, ...`` one after
the other (``weights[i]`` and ``biases[i]`` are views into it), and so do the gradients of
one backward pass; the optimizers recognise the layout and update every parameter with a
handful of whole-buffer operations. Training steps (:meth:`MLP.batch_loss_and_grads`,
:meth:`MLP.train_batch`) run in buffers kept between steps: a step allocates nothing
large.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpx.backend import Backend, check_dtype, get_backend, is_numpy, to_numpy
from mlpx.fast import kernels
from mlpx.nn.activations import ACTIVATIONS, Activation, get_activation
from mlpx.nn.init import init_weights
from mlpx.nn.losses import (
    CrossEntropyBuffers,
    cross_entropy_and_delta,
    cross_entropy_into,
    softmax,
)

Array = Any

_RELU = ACTIVATIONS["relu"]  # the registry's own object: patched activations take the generic path
_MAX_WORKSPACES = 3  # batch sizes whose buffers are kept (the batch size, the last batch, ...)


@dataclass
class Gradients:
    """Every delta of one backward pass (lists indexed ``i = l - 1``).

    weights[i] : (p_l, p_(l-1))  delta_W_l
    biases[i] : (p_l,)  delta_b_l
    pre_activations[i] : (n, p_l)  delta_a_l
    activations[i] : (n, p_l)  delta_f_l (for a linear layer the same array as delta_a_l)
    inputs : (n, d) delta_x = delta_f_0, or None unless asked for

    On NumPy, ``weights`` and ``biases`` are views into one flat buffer in the order of
    :meth:`parameters` (what lets an optimizer update everything at once).
    """

    weights: list[Array] = field(default_factory=list)
    biases: list[Array] = field(default_factory=list)
    pre_activations: list[Array] = field(default_factory=list)
    activations: list[Array] = field(default_factory=list)
    inputs: Array | None = None

    def parameters(self) -> list[Array]:
        """``[dW_1, db_1, dW_2, db_2, ...]``, the order of :meth:`MLP.parameters`."""
        return [g for pair in zip(self.weights, self.biases) for g in pair]

    def __repr__(self) -> str:
        shapes = ", ".join(f"dW_{i + 1}{tuple(w.shape)}" for i, w in enumerate(self.weights))
        return f"Gradients({shapes}, inputs={'None' if self.inputs is None else 'yes'})"


def _flat_views(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Consecutive views of the 1-d ``flat`` with the given shapes (C order)."""
    views, start = [], 0
    for shape in shapes:
        stop = start + math.prod(shape)
        views.append(flat[start:stop].reshape(shape))
        start = stop
    return views


class _ParamList(list):
    """``MLP.weights`` / ``MLP.biases`` on NumPy: views into the flat parameter buffer.

    Assigning an item (``net.weights[2] = W``) checks the new value and copies it into the
    view, so the arrays of :meth:`MLP.parameters` stay the live ones (an optimizer that
    holds them keeps working) and the flat layout stays intact.
    """

    def __init__(self, items: list[np.ndarray], assign: Callable[[int, Any], None]) -> None:
        super().__init__(items)
        self._assign = assign

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(
                    f"cannot assign {len(values)} arrays to {len(positions)} layers: the "
                    "number of layers is fixed"
                )
            for i, v in zip(positions, values):
                self._assign(i, v)
            return
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError("list assignment index out of range")
        self._assign(i % len(self), value)

    def __reduce__(self) -> Any:
        return (list, (list(self),))


class _Workspace:
    """Buffers of one batch size ``n``, reused by every training step of that size."""

    def __init__(self, net: MLP, n: int) -> None:
        dt = net.dtype
        widths = net.sizes[1:]
        self.n = n
        self.acts = list(net.activation_fns)
        self.a = [np.empty((n, p), dt) for p in widths]
        self.f: list[Any] = [None] + [
            np.empty((n, p), dt) if act is _RELU else None
            for p, act in zip(widths, net.activation_fns)
        ]
        self.zeros: list[Any] = []
        self.mask: list[Any] = []
        for p, act in zip(widths, net.activation_fns):
            z = np.zeros((n, p), dt) if act is _RELU else None
            if z is not None:
                z.flags.writeable = False  # relu's second operand; an array: ~5x faster than 0
            self.zeros.append(z)
            self.mask.append(np.empty((n, p), bool) if act is _RELU else None)
        self.ones = np.ones(n, dt)  # delta_b = ones^T delta_a: a GEMV, ~2x faster than sum
        self.loss = CrossEntropyBuffers(n, net.sizes[-1], dt)
        self.pred = np.empty(n, np.intp)
        self.hits = np.empty(n, bool)
        self.hit_count: int | None = None  # set by a step that counted them in its kernel
        self.ce_coef = np.array([n, 1 / n if n else 0.0], dt)  # [n, 1/n] of kernels.cross_entropy
        self.X: np.ndarray | None = None  # gathered rows of the training data

    def gather(self, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``X[rows]`` written into a kept buffer (rows already checked by ``y[rows]``)."""
        buf = self.X
        if buf is None or buf.dtype != X.dtype or buf.shape[1:] != X.shape[1:]:
            buf = self.X = np.empty((self.n, *X.shape[1:]), X.dtype)
        # mode="wrap" is unbuffered (mode="raise" copies twice) and maps -1 to n - 1 as
        # X[rows] does; out-of-range rows were rejected by y[rows].
        return np.take(X, rows, axis=0, out=buf, mode="wrap")


def _check_sizes(sizes: Any) -> list[int]:
    if isinstance(sizes, str | bytes) or not hasattr(sizes, "__len__"):
        raise ValueError(f"sizes must be a list of layer widths [d, p_1, ..., C], got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least two widths (inputs and classes), got {sizes!r}")
    for i, p in enumerate(sizes):
        if isinstance(p, bool) or not isinstance(p, int | np.integer) or p <= 0:
            raise ValueError(f"sizes[{i}] must be a positive integer, got {p!r}")
    if sizes[-1] < 2:
        raise ValueError(f"sizes[-1] is the number of classes and must be >= 2, got {sizes[-1]}")
    return [int(p) for p in sizes]


def _check_activations(activations: Any, n_layers: int) -> list[Activation]:
    if isinstance(activations, str):
        # One name for every hidden layer; the output layer stays linear (the lecture).
        return [get_activation(activations)] * (n_layers - 1) + [ACTIVATIONS["linear"]]
    names = list(activations)
    if len(names) != n_layers:
        raise ValueError(
            f"activations must name one activation per layer ({n_layers}) or be a single "
            f"name for every hidden layer, got {len(names)}: {names!r}"
        )
    return [get_activation(a, key=f"activations[{i}]") for i, a in enumerate(names)]


class MLP:
    """A multilayer perceptron ``sizes = [d, p_1, ..., p_(L-1), C]`` trained by backprop.

    Parameters
    ----------
    sizes : layer widths ``[p_0 = d, p_1, ..., p_L = C]`` (at least two).
    activations : one name per layer (L names), or one name for every hidden layer, in
        which case the output layer is ``linear``. See :data:`mlpx.ACTIVATIONS`.
    init : weight initialiser (:data:`mlpx.INITIALIZERS`), biases start at zero.
    seed : seed of the ``numpy.random.Generator`` that draws the weights (or pass ``rng``).
    dtype : ``"float32"`` or ``"float64"``.
    init_std : the standard deviation of ``init="normal"``.
    backend, device : where the arrays live (:data:`mlpx.backend.BACKENDS`): ``"numpy"``
        (default), ``"torch"`` (device ``cpu``, ``cuda``, ``cuda:N``, ``mps``), ``"cupy"``,
        ``"array_api_strict"``. The weights are drawn by the NumPy generator in float64 and
        then moved, so a seed gives the same initial weights on every backend. Arrays of
        the backend go in (NumPy arrays are accepted and moved) and come out.
    jit : ``"auto"`` (default), ``"true"`` or ``"false"`` (or a bool): whether the NumPy
        training step uses the compiled kernels of :mod:`mlpx.fast.kernels` (Numba, the
        ``jit`` extra); ``auto`` uses them when Numba is installed.
    """

    def __init__(
        self,
        sizes: list[int],
        activations: str | list[str] = "relu",
        init: str = "glorot_uniform",
        seed: int | None = None,
        dtype: str = "float64",
        *,
        init_std: float = 0.01,
        rng: np.random.Generator | None = None,
        backend: str | Backend = "numpy",
        device: str | None = None,
        jit: str | bool = "auto",
    ) -> None:
        self.sizes = _check_sizes(sizes)
        self.activation_fns = _check_activations(activations, len(self.sizes) - 1)
        self.dtype = check_dtype(dtype)
        self.init = init
        if isinstance(backend, Backend):
            if device is not None and device != backend.device_name:
                raise ValueError(
                    f"device={device!r} contradicts {backend!r}: pass a backend name with the "
                    "device, or the Backend alone"
                )
            self.backend = backend
        else:
            self.backend = get_backend(backend, device)
        self.xp = self.backend.xp
        #: Whether the NumPy training step runs the compiled kernels of :mod:`mlpx.fast.kernels`.
        self.jit = kernels.resolve(jit, key="jit") and self.backend.name == "numpy"
        self._kernels = kernels.get() if self.jit else None
        if rng is None:
            rng = np.random.default_rng(seed)
        drawn = init_weights(init, self.sizes, rng, init_std)
        self._param_shapes = tuple(
            shape
            for i in range(self.num_layers)
            for shape in (self._weight_shape(i), (self.sizes[i + 1],))
        )
        self._weights: list[Array]
        self._biases: list[Array]
        if self.backend.name == "numpy":
            self._pack(drawn, [np.zeros(p) for p in self.sizes[1:]])
        else:
            self._weights = [self.backend.asarray(W, dtype=self.dtype) for W in drawn]
            self._biases = [self.backend.asarray(np.zeros(p), self.dtype) for p in self.sizes[1:]]
        self._a: list[Array] = []
        self._f: list[Array] = []
        self._work: dict[int, _Workspace] = {}

    # ------------------------------------------------------------------ parameters
    @property
    def activations(self) -> list[str]:
        """Names of ``phi_1 .. phi_L``."""
        return [act.name for act in self.activation_fns]

    @property
    def num_layers(self) -> int:
        """``L``, the number of weight matrices."""
        return len(self.sizes) - 1

    @property
    def weights(self) -> list[Array]:
        """``[W_1, ..., W_L]``, ``W_l`` of shape ``(p_l, p_(l-1))``; items are assignable."""
        return self._weights

    @weights.setter
    def weights(self, values: list[Array]) -> None:
        checked = self._checked_params(values, "weights", lambda i: self._weight_shape(i))
        if isinstance(self._weights, _ParamList):  # copied into the flat buffer
            for view, v in zip(list(self._weights), checked):
                view[...] = v
        else:
            self._weights = checked

    @property
    def biases(self) -> list[Array]:
        """``[b_1, ..., b_L]``, ``b_l`` of shape ``(p_l,)``; items are assignable."""
        return self._biases

    @biases.setter
    def biases(self, values: list[Array]) -> None:
        checked = self._checked_params(values, "biases", lambda i: (self.sizes[i + 1],))
        if isinstance(self._biases, _ParamList):
            for view, v in zip(list(self._biases), checked):
                view[...] = v
        else:
            self._biases = checked

    def _pack(self, weights: list[Any], biases: list[Any]) -> None:
        """NumPy: one flat buffer ``W_1, b_1, W_2, ...`` holding every parameter."""
        flat = np.empty(self.num_parameters, dtype=self.dtype)
        views = _flat_views(flat, list(self._param_shapes))
        for view, value in zip(views, [p for pair in zip(weights, biases) for p in pair]):
            view[...] = value
        self._weights = _ParamList(views[0::2], lambda i, v: self._assign("weights", i, v))
        self._biases = _ParamList(views[1::2], lambda i, v: self._assign("biases", i, v))

    def _assign(self, key: str, i: int, value: Any) -> None:
        """``net.weights[i] = value`` on NumPy: check, then copy into the flat buffer."""
        view = list.__getitem__(self._weights if key == "weights" else self._biases, i)
        v = self.backend.asarray(value, dtype=self.dtype)
        if tuple(v.shape) != view.shape:
            raise ValueError(f"{key}[{i}] must have shape {view.shape}, got {tuple(v.shape)}")
        view[...] = v

    def _weight_shape(self, i: int) -> tuple[int, int]:
        return (self.sizes[i + 1], self.sizes[i])

    def _checked_params(self, values: list[Array], key: str, shape_of: Any) -> list[Array]:
        values = list(values)
        if len(values) != self.num_layers:
            raise ValueError(f"{key} must hold {self.num_layers} arrays, got {len(values)}")
        out = []
        for i, v in enumerate(values):
            v = self.backend.asarray(v, dtype=self.dtype)
            if tuple(v.shape) != shape_of(i):
                raise ValueError(f"{key}[{i}] must have shape {shape_of(i)}, got {tuple(v.shape)}")
            out.append(v)
        return out

    def _check_param_shapes(self) -> None:
        """Items of ``weights``/``biases`` may be reassigned: check them before use."""
        for i, (W, b) in enumerate(zip(self._weights, self._biases)):
            if tuple(W.shape) != self._weight_shape(i):
                raise ValueError(
                    f"weights[{i}] must have shape {self._weight_shape(i)}, got {tuple(W.shape)}"
                )
            if tuple(b.shape) != (self.sizes[i + 1],):
                raise ValueError(
                    f"biases[{i}] must have shape ({self.sizes[i + 1]},), got {tuple(b.shape)}"
                )

    def parameters(self) -> list[Array]:
        """``[W_1, b_1, W_2, b_2, ...]``: the arrays themselves, so updates are in place.

        On NumPy they are consecutive views of one flat buffer; assigning
        ``net.weights[i] = W`` copies into the view, so a list taken earlier stays live.
        """
        return [p for pair in zip(self._weights, self._biases) for p in pair]

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars, ``sum_l p_l (p_(l-1) + 1)``."""
        return sum(p * (q + 1) for q, p in zip(self.sizes, self.sizes[1:]))

    def __repr__(self) -> str:
        acts = self.activations
        shown = acts[0] if len(set(acts[:-1])) == 1 and acts[-1] == "linear" else acts
        where = "" if self.backend.name == "numpy" else f", backend={self.backend!r}"
        return (
            f"MLP(sizes={self.sizes}, activations={shown!r}, init={self.init!r}, "
            f"dtype={self.dtype!r}, parameters={self.num_parameters}{where})"
        )

    # ------------------------------------------------------------------ inputs
    def _check_X(self, X: Array) -> Array:
        xp = self.xp
        X = self.backend.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"X must have shape (n, {self.sizes[0]}) for this network, got {tuple(X.shape)}"
            )
        if is_numpy(xp):  # min and max propagate NaN and show inf: no (n, d) temporary
            finite = X.size == 0 or (math.isfinite(X.min()) and math.isfinite(X.max()))
        else:
            finite = bool(xp.all(xp.isfinite(X)))
        if not finite:
            raise ValueError("X must hold finite values only, got NaN or inf")
        return X

    def _check_y(self, y: Array, n: int) -> Array:
        xp = self.xp
        y = self.backend.asarray(y)
        C = self.sizes[-1]
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must be integer labels of shape ({n},), got {tuple(y.shape)}")
        if not xp.isdtype(y.dtype, "integral"):
            if not bool(xp.all(y == xp.round(y))):
                raise ValueError(f"y must hold integer labels 0..{C - 1}, got {y.dtype} values")
            y = xp.astype(y, xp.int64)
        if n and (int(xp.min(y)) < 0 or int(xp.max(y)) >= C):
            raise ValueError(
                f"y must hold labels in 0..{C - 1}, got values in "
                f"{int(xp.min(y))}..{int(xp.max(y))}"
            )
        return y

    # ------------------------------------------------------------------ forward
    def forward(self, X: Array, *, validate: bool = True) -> Array:
        """Logits ``f_L`` (n, C) for inputs X (n, d); caches every ``a_l`` and ``f_l``.

        ``validate=False`` skips the checks of X (for a trainer that checked the data once).
        The logits and the cache are new arrays, the caller's to keep.
        """
        if validate:
            X = self._check_X(X)
            self._check_param_shapes()
        xp = self.xp
        if is_numpy(xp):
            return self._forward_numpy(X, None)
        f = X
        self._a, self._f = [], [X]
        for W, b, act in zip(self._weights, self._biases, self.activation_fns):
            a = f @ W.T + b
            f = act.forward(a, xp)
            self._a.append(a)
            self._f.append(f)
        return f

    __call__ = forward

    def _forward_numpy(self, X: np.ndarray, work: _Workspace | None) -> np.ndarray:
        """NumPy forward pass, into the buffers of ``work`` (training) or new arrays."""
        f = X
        if work is None:
            A, F = [], [X]
            for W, b, act in zip(self._weights, self._biases, self.activation_fns):
                a = np.matmul(f, W.T)
                a += b
                f = np.maximum(a, 0) if act is _RELU else act.forward(a, np)
                A.append(a)
                F.append(f)
        else:
            A, F = work.a, work.f
            F[0] = X
            k = self._kernels
            for i, (W, b, act) in enumerate(zip(self._weights, self._biases, self.activation_fns)):
                a = np.matmul(f, W.T, out=A[i])
                if k is not None and act is _RELU:  # a += b; f = max(a, 0), one pass
                    f = F[i + 1]
                    k.bias_relu(a, b, f)
                    continue
                a += b
                if act is _RELU:  # f_l in its own buffer: a_l stays readable (net._a)
                    f = np.maximum(a, work.zeros[i], out=F[i + 1])
                else:
                    f = F[i + 1] = act.forward(a, np)
        self._a, self._f = A, F
        return f

    def _workspace(self, n: int) -> _Workspace:
        work = self._work.get(n)
        if work is None or work.acts != self.activation_fns:  # (activations may be swapped)
            if len(self._work) >= _MAX_WORKSPACES:
                del self._work[next(iter(self._work))]
            work = self._work[n] = _Workspace(self, n)
        return work

    def predict_proba(self, X: Array) -> Array:
        """``mu = S(f_L)`` (n, C): class probabilities."""
        return softmax(self.forward(X))

    def predict(self, X: Array) -> Array:
        """The lecture's rule: the class with the largest logit, (n,) integers."""
        return self.xp.argmax(self.forward(X), axis=1)

    # ------------------------------------------------------------------ backward
    def backward(
        self, delta_f: Array, *, input_grad: bool = False, out: Gradients | None = None
    ) -> Gradients:
        """Backpropagate ``delta_f_L`` (n, C) through the cached forward pass (B7).

        Returns every ``delta_a_l``, ``delta_f_l``, ``delta_W_l``, ``delta_b_l`` and, when
        ``input_grad`` is true, ``delta_x = delta_f_0`` (one more GEMM). Without ``out``
        every array is new. With ``out`` (a previous result of the same network) the NumPy
        path writes into its arrays (every delta whose shape fits) instead of allocating
        new ones, so arrays taken from ``out`` earlier are overwritten.
        """
        if not self._a:
            raise RuntimeError("backward needs a forward pass first: call forward(X)")
        xp = self.xp
        if is_numpy(xp):
            g = self._numpy_gradients(out)
            das, dfs, dx = self._delta_buffers(g, delta_f.shape[0], input_grad, out is not None)
            dfs = [*dfs[:-1], np.array(delta_f, dtype=dfs[-1].dtype, copy=True)]
            return self._backward_numpy(g, das, dfs, dx, None)
        L = self.num_layers
        g = out if out is not None else Gradients()
        dWs: list[Array] = [None] * L
        dbs: list[Array] = [None] * L
        das = [None] * L
        dfs = [None] * L
        df = delta_f
        for i in range(L - 1, -1, -1):
            act = self.activation_fns[i]
            dfs[i] = df
            da = act.delta(df, self._a[i], self._f[i + 1], xp)
            das[i] = da
            dWs[i] = da.T @ self._f[i]
            dbs[i] = xp.sum(da, axis=0)
            if i > 0 or input_grad:
                df = da @ self._weights[i]
        g.weights, g.biases, g.pre_activations, g.activations = dWs, dbs, das, dfs
        g.inputs = df if input_grad else None
        return g

    def _numpy_gradients(self, out: Gradients | None) -> Gradients:
        """``out`` when its ``weights``/``biases`` can be written into, else a Gradients
        (``out`` itself, re-filled) on a new flat buffer in the order of :meth:`parameters`."""
        shapes = self._param_shapes
        if out is not None:
            stamp = getattr(out, "_stamp", None)  # set when checked at an earlier step
            if stamp is not None and stamp[0] is shapes and stamp[1] is out.weights:
                if stamp[2] is out.biases:
                    return out
            arrays = [p for pair in zip(out.weights, out.biases) for p in pair]
            if len(arrays) == len(shapes) and all(
                isinstance(p, np.ndarray)
                and p.shape == shape
                and p.dtype == self.dtype
                and p.flags.writeable
                for p, shape in zip(arrays, shapes)
            ):
                out._stamp = (shapes, out.weights, out.biases)  # type: ignore[attr-defined]
                return out
        g = out if out is not None else Gradients()
        views = _flat_views(np.empty(self.num_parameters, self.dtype), list(shapes))
        g.weights, g.biases = views[0::2], views[1::2]
        g._stamp = (shapes, g.weights, g.biases)  # type: ignore[attr-defined]
        return g

    def _delta_buffers(
        self, g: Gradients, n: int, input_grad: bool, reuse: bool
    ) -> tuple[list[Any], list[Any], Any]:
        """Arrays for ``delta_a_l`` (relu layers), ``delta_f_l`` (n, p_l) and ``delta_x``.

        With ``reuse``, ``g``'s own arrays when their shapes fit (and those of another
        batch size met before, kept aside on ``g``), else new ones.
        """
        if reuse:
            dfs, das, dx = g.activations, g.pre_activations, g.inputs
            stamp = getattr(g, "_deltas", None)  # the lists this method filled last time
            if stamp is None or stamp[0] is not dfs or stamp[1] is not das or stamp[2] != n:
                spare = g.__dict__.setdefault("_spare", {})
                if stamp is not None and stamp[0] is dfs and stamp[1] is das:
                    if len(spare) >= _MAX_WORKSPACES:
                        del spare[next(iter(spare))]
                    spare[stamp[2]] = (dfs, das, dx)  # the other batch size, for later
                    dfs, das, dx = spare.pop(n, None) or self._new_deltas(n)
                elif not self._deltas_fit(dfs, das, n):
                    dfs, das, dx = spare.pop(n, None) or self._new_deltas(n)
        else:
            dfs, das, dx = self._new_deltas(n)
        if input_grad:
            d = self.sizes[0]
            if not (isinstance(dx, np.ndarray) and dx.shape == (n, d) and dx.dtype == self.dtype):
                dx = np.empty((n, d), self.dtype)
        return das, dfs, dx

    def _deltas_fit(self, dfs: list[Any], das: list[Any], n: int) -> bool:
        """Whether the delta arrays of a Gradients can hold a batch of ``n`` rows."""
        if len(dfs) != self.num_layers or len(das) != self.num_layers:
            return False
        for df, da, p, act in zip(dfs, das, self.sizes[1:], self.activation_fns):
            for d in (df, da) if act is _RELU else (df,):
                if not (isinstance(d, np.ndarray) and d.shape == (n, p) and d.dtype == self.dtype):
                    return False
                if not d.flags.writeable:
                    return False
            if act is _RELU and da is df:
                return False
        return True

    def _new_deltas(self, n: int) -> tuple[list[Any], list[Any], None]:
        dt = self.dtype
        dfs = [np.empty((n, p), dt) for p in self.sizes[1:]]
        das = [
            np.empty((n, p), dt) if act is _RELU else None
            for p, act in zip(self.sizes[1:], self.activation_fns)
        ]
        return dfs, das, None

    def _backward_numpy(
        self,
        g: Gradients,
        das: list[Any],
        dfs: list[Any],
        dx: np.ndarray | None,
        work: _Workspace | None,
    ) -> Gradients:
        """NumPy backward pass into ``g.weights``/``g.biases`` and the delta buffers.

        ``dfs[-1]`` holds ``delta_f_L``; ``das[i]`` receives ``delta_a_l`` of a relu layer
        (other activations return a new array, linear ones ``delta_f_l`` itself); ``dx``
        (or None) receives ``delta_x``. ``delta_x`` is never computed unless asked for.
        """
        A, F = self._a, self._f
        L = self.num_layers
        ones = work.ones if work is not None else np.ones(dfs[-1].shape[0], self.dtype)
        das_out: list[Any] = [None] * L
        dfs_out: list[Any] = [None] * L
        df = dfs[-1]
        for i in range(L - 1, -1, -1):
            act = self.activation_fns[i]
            dfs_out[i] = df
            if act is _RELU and work is not None and self._kernels is not None:
                da = das[i]
                self._kernels.relu_delta(df, F[i + 1], da)
            elif act is _RELU:  # delta_f * [f > 0]: ~15x faster than df[f <= 0] = 0
                mask = F[i + 1] > 0 if work is None else np.greater(F[i + 1], 0, out=work.mask[i])
                da = np.multiply(df, mask, out=das[i])
            else:
                da = act.delta(df, A[i], F[i + 1], np)
            das_out[i] = da
            np.matmul(da.T, F[i], out=g.weights[i])
            np.matmul(ones, da, out=g.biases[i])  # delta_b = sum over the samples, a GEMV
            if i > 0:
                df = np.matmul(da, self._weights[i], out=dfs[i - 1])
            elif dx is not None:
                dx = np.matmul(da, self._weights[i], out=dx)
        g.pre_activations, g.activations, g.inputs = das_out, dfs_out, dx
        g._deltas = (dfs_out, das_out, dfs_out[0].shape[0])  # type: ignore[attr-defined]
        return g

    def loss_and_grads(
        self,
        X: Array,
        y: Array,
        *,
        input_grad: bool = False,
        out: Gradients | None = None,
    ) -> tuple[float, Gradients]:
        """Mean softmax cross-entropy on (X, y) and every delta of the lecture.

        X : (n, d); y : (n,) integer labels in ``0..C-1``.
        Returns ``(loss, g)`` with ``g`` a :class:`Gradients`; ``g.inputs`` is
        ``delta_x`` (n, d) when ``input_grad`` is true, else None. Without ``out`` every
        array of ``g`` is new and stays valid; with ``out``, see :meth:`backward`.
        """
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        loss, g = self.batch_loss_and_grads(X, y, input_grad=input_grad, out=out)
        return float(loss), g

    def batch_loss_and_grads(
        self, X: Array, y: Array, *, input_grad: bool = False, out: Gradients | None = None
    ) -> tuple[Array, Gradients]:
        """:meth:`loss_and_grads` for training loops: no checks of X and y (check the data
        once with :meth:`check_data`), and the loss stays a 0-d array on the device, so a
        GPU step does not wait for the host (on NumPy it is a float).

        On NumPy the forward pass runs in buffers the network keeps between calls (the
        cache ``net._a``, ``net._f`` is valid until the next call) and, with ``out``, the
        deltas are written into ``out``'s arrays: a step then allocates nothing large.
        """
        if not is_numpy(self.xp):
            logits = self.forward(X, validate=False)
            loss, delta_f = cross_entropy_and_delta(logits, y)
            return loss, self.backward(delta_f, input_grad=input_grad, out=out)
        return self._step_numpy(X, y, out, input_grad, self._workspace(X.shape[0]))

    def _step_numpy(
        self, X: np.ndarray, y: np.ndarray, out: Gradients | None, input_grad: bool, work: Any
    ) -> tuple[float, Gradients]:
        logits = self._forward_numpy(X, work)
        g = self._numpy_gradients(out)
        das, dfs, dx = self._delta_buffers(g, X.shape[0], input_grad, out is not None)
        if self._kernels is not None and work.n > 0:  # also counts the hits (train_batch)
            loss, work.hit_count = self._kernels.cross_entropy(logits, y, dfs[-1], work.ce_coef)
            if work.hit_count < 0:
                raise ValueError(f"labels must be integers in 0..{self.sizes[-1] - 1}")
        else:
            loss, work.hit_count = cross_entropy_into(logits, y, dfs[-1], work.loss), None
        return loss, self._backward_numpy(g, das, dfs, dx, work)

    def train_batch(
        self, X: Array, y: Array, rows: Array, *, out: Gradients | None = None
    ) -> tuple[Any, Any, Gradients]:
        """One training step's forward and backward pass on the rows ``rows`` of (X, y).

        X : (N, d) and y : (N,), checked once with :meth:`check_data`; rows : (n,) integer
        indices into them (the mini-batch). Returns ``(loss, correct, g)``: the mean
        cross-entropy of the batch, the number of its rows whose largest logit is the label
        (before the update) and every delta, written into ``out`` when given (see
        :meth:`backward`). On NumPy ``loss`` is a float and ``correct`` an int, the batch is
        gathered into a kept buffer and nothing large is allocated; on other backends both
        are 0-d arrays on the device (no wait for the host).
        """
        xp = self.xp
        if not is_numpy(xp):
            Xb, yb = xp.take(X, rows, axis=0), xp.take(y, rows, axis=0)
            loss, g = self.batch_loss_and_grads(Xb, yb, out=out)
            hits = xp.argmax(self._f[-1], axis=1) == yb
            return loss, xp.sum(xp.astype(hits, xp.int64)), g
        if rows.dtype.kind not in "iu":
            raise ValueError(f"rows must be an integer index array, got dtype {rows.dtype}")
        yb = y[rows]  # also rejects out-of-range rows, before the unchecked gather below
        work = self._workspace(yb.shape[0])
        loss, g = self._step_numpy(work.gather(X, rows), yb, out, False, work)
        if work.hit_count is not None:  # counted by the compiled cross-entropy
            return loss, work.hit_count, g
        self._f[-1].argmax(axis=1, out=work.pred)  # methods: no dispatch layer, ~3x faster
        return loss, int(np.count_nonzero(np.equal(work.pred, yb, out=work.hits))), g

    def check_data(self, X: Array, y: Array) -> tuple[Array, Array]:
        """Check X (n, d) and y (n,) and move them to the network's backend and dtype."""
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    def loss(self, X: Array, y: Array) -> float:
        """Mean softmax cross-entropy on (X, y), without gradients."""
        X, y = self.check_data(X, y)
        return float(cross_entropy_and_delta(self.forward(X, validate=False), y)[0])

    def evaluate(
        self, X: Array, y: Array, *, batch_size: int = 4096, validate: bool = True
    ) -> tuple[float, float]:
        """``(mean loss, accuracy)`` on (X, y), in chunks of ``batch_size`` rows."""
        if validate:
            X, y = self.check_data(X, y)
        xp = self.xp
        n = X.shape[0]
        if n == 0:
            return math.nan, math.nan
        total, correct = 0.0, 0
        for s in range(0, n, batch_size):
            e = min(s + batch_size, n)  # in-bounds slices: the array API leaves others open
            logits = self.forward(X[s:e, ...], validate=False)
            yb = y[s:e]
            loss, _ = cross_entropy_and_delta(logits, yb)
            total += float(loss) * logits.shape[0]
            correct += int(xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, xp.int64)))
        return total / n, correct / n

    def state_dict(self) -> dict[str, Any]:
        """Architecture and parameters as plain NumPy arrays and strings (``.npz``-safe)."""
        state: dict[str, Any] = {
            "sizes": np.asarray(self.sizes),
            "activations": np.asarray(self.activations),
            "dtype": np.asarray(self.dtype),
        }
        for i, (W, b) in enumerate(zip(self._weights, self._biases)):
            state[f"W_{i + 1}"] = to_numpy(W).copy()
            state[f"b_{i + 1}"] = to_numpy(b).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load parameters saved by :meth:`state_dict`; the architecture must match."""
        sizes = [int(p) for p in np.asarray(state["sizes"])]
        acts = [str(a) for a in np.asarray(state["activations"])]
        if sizes != self.sizes or acts != self.activations:
            raise ValueError(
                f"state is for sizes={sizes}, activations={acts}; this network has "
                f"sizes={self.sizes}, activations={self.activations}"
            )
        L = self.num_layers
        self.weights = [state[f"W_{i + 1}"] for i in range(L)]
        self.biases = [state[f"b_{i + 1}"] for i in range(L)]

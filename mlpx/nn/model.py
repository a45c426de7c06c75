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

This is the code that runs on every backend (NumPy, torch, cupy, array_api_strict). On
NumPy, :func:`mlpx.train.fit` runs the same equations through :mod:`mlpx.fast.step`, which
keeps its buffers between steps (and may use compiled kernels) and is tested equal to this
module; the model itself knows nothing of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpx.backend import Backend, check_dtype, get_backend, is_numpy, to_numpy
from mlpx.checks import jit_setting
from mlpx.memory import available_ram, format_bytes, parameter_count
from mlpx.nn.activations import ACTIVATIONS, Activation, get_activation
from mlpx.nn.init import init_weights
from mlpx.nn.losses import cross_entropy_and_delta, softmax

Array = Any


@dataclass
class Gradients:
    """Every delta of one backward pass (lists indexed ``i = l - 1``).

    weights[i] : (p_l, p_(l-1))  delta_W_l
    biases[i] : (p_l,)  delta_b_l
    pre_activations[i] : (n, p_l)  delta_a_l
    activations[i] : (n, p_l)  delta_f_l (for a linear layer the same array as delta_a_l)
    inputs : (n, d) delta_x = delta_f_0, or None unless asked for
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


@dataclass
class ForwardCache:
    """What the last forward pass computed: ``a = [a_1, ..., a_L]`` and
    ``f = [f_0 = X, f_1, ..., f_L]``, each ``(n, p_l)``; backward reads them."""

    a: list[Array] = field(default_factory=list)
    f: list[Array] = field(default_factory=list)


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


def _too_big(sizes: list[int], dtype: str, available: int | None) -> str:
    n = parameter_count(sizes)
    need = format_bytes(n * (8 + np.dtype(dtype).itemsize))
    shown = sizes if len(sizes) <= 8 else [*sizes[:4], "...", *sizes[-2:]]
    has = f"only {format_bytes(available)} is available" if available else "allocation failed"
    return (
        f"MLP(sizes={shown}) has {n:,} parameters: creating them takes about {need} "
        f"(float64 draws, then {dtype}) but {has}; use smaller widths"
    )


def _check_memory(sizes: list[int], dtype: str) -> None:
    """MemoryError (one line) before drawing weights that cannot fit in the available RAM."""
    need = parameter_count(sizes) * (8 + np.dtype(dtype).itemsize)
    if need < 1 << 28:  # under 256 MiB: not worth reading /proc
        return
    available = available_ram()
    if available is not None and need > available:
        raise MemoryError(_too_big(sizes, dtype, available))


def _nonempty(X: Array, y: Array) -> tuple[Array, Array]:
    if X.shape[0] == 0:
        raise ValueError(
            "X has no rows: the mean loss of an empty batch is undefined; pass at least one sample"
        )
    return X, y


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
        training step of :mod:`mlpx.fast` may use compiled kernels (Numba, the ``jit``
        extra); ``auto`` uses them when Numba is installed. Stored as given (canonical
        string); the model itself never compiles anything.

    ``weights`` and ``biases`` are plain lists of arrays; :meth:`parameters` returns the
    arrays themselves, so an optimizer updates them in place. Networks pickle and
    deep-copy (the backend is stored by name), and a copy computes the same logits.
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
        self.jit = jit_setting(jit, key="jit")
        if rng is None:
            rng = np.random.default_rng(seed)
        _check_memory(self.sizes, self.dtype)
        try:
            drawn = init_weights(init, self.sizes, rng, init_std)
            asarray = self.backend.asarray
            self._weights: list[Array] = [asarray(W, dtype=self.dtype) for W in drawn]
            self._biases: list[Array] = [asarray(np.zeros(p), self.dtype) for p in self.sizes[1:]]
        except MemoryError:
            raise MemoryError(_too_big(self.sizes, self.dtype, None)) from None
        #: The last forward pass's ``a_l`` and ``f_l`` (read by :meth:`backward`).
        self.cache = ForwardCache()

    @property
    def xp(self) -> Any:
        """The array namespace of the backend (``numpy``, ``torch``, ...)."""
        return self.backend.xp

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
        """``[W_1, ..., W_L]``, ``W_l`` of shape ``(p_l, p_(l-1))``; items are assignable
        (``net.weights[i] = W``; the shape is checked at the next use)."""
        return self._weights

    @weights.setter
    def weights(self, values: list[Array]) -> None:
        self._weights = self._checked("weights", values, self.weight_shape)

    @property
    def biases(self) -> list[Array]:
        """``[b_1, ..., b_L]``, ``b_l`` of shape ``(p_l,)``; items are assignable."""
        return self._biases

    @biases.setter
    def biases(self, values: list[Array]) -> None:
        self._biases = self._checked("biases", values, self.bias_shape)

    def weight_shape(self, i: int) -> tuple[int, int]:
        """``(p_l, p_(l-1))`` of ``W_l``, ``l = i + 1``."""
        return (self.sizes[i + 1], self.sizes[i])

    def bias_shape(self, i: int) -> tuple[int]:
        """``(p_l,)`` of ``b_l``, ``l = i + 1``."""
        return (self.sizes[i + 1],)

    def _checked(self, key: str, values: list[Array], shape_of: Any) -> list[Array]:
        values = list(values)
        if len(values) != self.num_layers:
            raise ValueError(f"{key} must hold {self.num_layers} arrays, got {len(values)}")
        out = [self.backend.asarray(v, dtype=self.dtype) for v in values]
        for i, v in enumerate(out):
            if tuple(v.shape) != shape_of(i):
                raise ValueError(f"{key}[{i}] must have shape {shape_of(i)}, got {tuple(v.shape)}")
        return out

    def check_parameters(self) -> None:
        """Items of ``weights``/``biases`` may be reassigned: check shapes before use."""
        for key, arrays, shape_of in (
            ("weights", self._weights, self.weight_shape),
            ("biases", self._biases, self.bias_shape),
        ):
            if len(arrays) != self.num_layers:
                raise ValueError(f"{key} must hold {self.num_layers} arrays, got {len(arrays)}")
            for i, v in enumerate(arrays):
                if tuple(v.shape) != shape_of(i):
                    raise ValueError(
                        f"{key}[{i}] must have shape {shape_of(i)}, got {tuple(v.shape)}"
                    )

    def parameters(self) -> list[Array]:
        """``[W_1, b_1, W_2, b_2, ...]``: the arrays themselves, so updates are in place."""
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the parameters, not the cache of the last forward pass."""
        state = dict(self.__dict__)
        state["cache"] = ForwardCache()
        return state

    # ------------------------------------------------------------------ inputs
    def check_data(self, X: Array, y: Array) -> tuple[Array, Array]:
        """Check X (n, d) and y (n,) and move them to the network's backend and dtype."""
        X = self.check_inputs(X)
        return X, self.check_labels(y, X.shape[0])

    def check_inputs(self, X: Array) -> Array:
        """X as an (n, d) array of the network's backend and dtype, finite values only."""
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

    def check_labels(self, y: Array, n: int) -> Array:
        """y as (n,) integer labels in ``0..C-1`` on the network's backend."""
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

        ``a_l = f_(l-1) W_l^T + b_l``, ``f_l = phi_l(a_l)``. ``validate=False`` skips the
        checks of X (for a trainer that checked the data once).
        """
        if validate:
            X = self.check_inputs(X)
            self.check_parameters()
        xp = self.xp
        f = X
        A, F = [], [X]
        for W, b, act in zip(self._weights, self._biases, self.activation_fns):
            a = f @ W.T + b
            f = act.forward(a, xp)
            A.append(a)
            F.append(f)
        self.cache = ForwardCache(A, F)
        return f

    __call__ = forward

    def predict_proba(self, X: Array) -> Array:
        """``mu = S(f_L)`` (n, C): class probabilities."""
        return softmax(self.forward(X))

    def predict(self, X: Array) -> Array:
        """The lecture's rule: the class with the largest logit, (n,) integers."""
        return self.xp.argmax(self.forward(X), axis=1)

    # ------------------------------------------------------------------ backward
    def backward(self, delta_f: Array, *, input_grad: bool = False, out: Any = None) -> Gradients:
        """Backpropagate ``delta_f_L`` (n, C) through the cached forward pass (B7).

        For l = L .. 1: ``delta_a_l = delta_f_l * phi_l'(a_l)``, ``delta_W_l = delta_a_l^T
        f_(l-1)``, ``delta_b_l = sum_i delta_a_l``, ``delta_f_(l-1) = delta_a_l W_l``.
        Returns every delta; ``delta_x = delta_f_0`` only when ``input_grad`` is true (it
        costs one more GEMM). Every array is new. ``out`` is accepted for compatibility
        and ignored (the buffer-reusing step is :class:`mlpx.fast.step.FastStep`).
        """
        A, F = self.cache.a, self.cache.f
        if not A:
            raise RuntimeError("backward needs a forward pass first: call forward(X)")
        xp = self.xp
        L = self.num_layers
        g = Gradients([None] * L, [None] * L, [None] * L, [None] * L)
        df = delta_f
        for i in range(L - 1, -1, -1):
            act = self.activation_fns[i]
            g.activations[i] = df
            da = g.pre_activations[i] = act.delta(df, A[i], F[i + 1], xp)
            g.weights[i] = da.T @ F[i]
            g.biases[i] = xp.sum(da, axis=0)
            if i > 0 or input_grad:
                df = da @ self._weights[i]
        g.inputs = df if input_grad else None
        return g

    def loss_and_grads(
        self, X: Array, y: Array, *, input_grad: bool = False, out: Any = None
    ) -> tuple[float, Gradients]:
        """Mean softmax cross-entropy on (X, y) and every delta of the lecture.

        X : (n, d); y : (n,) integer labels in ``0..C-1``.
        Returns ``(loss, g)`` with ``g`` a :class:`Gradients` of new arrays; ``g.inputs``
        is ``delta_x`` (n, d) when ``input_grad`` is true, else None. ``out`` is accepted
        for compatibility and ignored.
        """
        X, y = _nonempty(*self.check_data(X, y))
        self.check_parameters()
        loss, g = self.batch_loss_and_grads(X, y, input_grad=input_grad)
        return float(loss), g

    def batch_loss_and_grads(
        self, X: Array, y: Array, *, input_grad: bool = False, out: Any = None
    ) -> tuple[Array, Gradients]:
        """:meth:`loss_and_grads` for training loops: no checks of X and y (check the data
        once with :meth:`check_data`), and the loss stays a 0-d array on the device, so a
        GPU step does not wait for the host."""
        logits = self.forward(X, validate=False)
        loss, delta_f = cross_entropy_and_delta(logits, y)  # B3: (mu - Y) / n
        return loss, self.backward(delta_f, input_grad=input_grad)

    def train_batch(
        self, X: Array, y: Array, rows: Array, *, out: Any = None
    ) -> tuple[Any, Any, Gradients]:
        """One training step's forward and backward pass on the rows ``rows`` of (X, y).

        X : (N, d) and y : (N,), checked once with :meth:`check_data`; rows : (n,) integer
        indices (the mini-batch). Returns ``(loss, correct, g)``: the batch's mean
        cross-entropy, the number of its rows whose largest logit is the label (before the
        update), as 0-d arrays on the device, and every delta.
        """
        xp = self.xp
        Xb, yb = xp.take(X, rows, axis=0), xp.take(y, rows, axis=0)
        loss, g = self.batch_loss_and_grads(Xb, yb)
        hits = xp.argmax(self.cache.f[-1], axis=1) == yb
        return loss, xp.sum(xp.astype(hits, xp.int64)), g

    def loss(self, X: Array, y: Array) -> float:
        """Mean softmax cross-entropy on (X, y), without gradients."""
        X, y = _nonempty(*self.check_data(X, y))
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

    # ------------------------------------------------------------------ checkpoints
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
        """Load parameters saved by :meth:`state_dict`; the architecture must match.

        The values are copied into the current arrays (``W[...] = saved``), so lists of
        :meth:`parameters` taken earlier, and an optimizer holding them, stay valid."""
        L = len(self.sizes) - 1
        needed = ["sizes", "activations", *(f"{k}_{i + 1}" for i in range(L) for k in "Wb")]
        missing = [k for k in needed if k not in state]
        if missing:
            raise ValueError(
                f"state is missing {', '.join(map(repr, missing))}: load_state_dict needs "
                f"{', '.join(needed)} (as written by MLP.state_dict)"
            )
        sizes = [int(p) for p in np.asarray(state["sizes"])]
        acts = [str(a) for a in np.asarray(state["activations"])]
        if sizes != self.sizes or acts != self.activations:
            raise ValueError(
                f"state is for sizes={sizes}, activations={acts}; this network has "
                f"sizes={self.sizes}, activations={self.activations}"
            )
        L = self.num_layers
        weights = self._checked(
            "weights", [state[f"W_{i + 1}"] for i in range(L)], self.weight_shape
        )
        biases = self._checked("biases", [state[f"b_{i + 1}"] for i in range(L)], self.bias_shape)
        for old, new in zip(self.parameters(), [p for pair in zip(weights, biases) for p in pair]):
            old[...] = new

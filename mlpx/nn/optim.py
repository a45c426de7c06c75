"""First-order optimizers, learning-rate schedules and gradient clipping.

The update rules are those of ``torch.optim`` (the single-tensor code paths), with the
same hyper-parameter names and defaults, written against the array namespace ``xp`` of
the parameters (see :mod:`mlpx.backend`). Every optimizer has two code paths:

* a generic one made of in-place operators (``p -= ...``, ``m *= b1``) that works for
  NumPy arrays, torch tensors, cupy and ``array_api_strict`` arrays;
* for NumPy (and for the hottest rules: SGD and Adam/AdamW) a fast path that writes into
  per-parameter scratch buffers with ``out=``, so that a step allocates nothing.

Both paths perform the same floating-point operations in the same order and give
bit-identical results. When the NumPy parameters are consecutive views of one flat buffer
(as :class:`mlpx.MLP`'s are) and the gradients share that layout (as those of
``MLP.loss_and_grads`` do), the update, being elementwise, runs once on the whole buffer:
a dozen NumPy calls per step whatever the number of layers, instead of a dozen per
parameter. The optimizer state then lives in flat buffers too, its per-parameter arrays
(``state_dict``) being views of them.

Usage::

    opt = make_optimizer("adam", lr=1e-3, schedule={"name": "cosine", "T_max": 1000})
    opt.step(params, grads)        # params updated in place, grads left untouched
    ckpt = opt.state_dict()        # plain NumPy arrays, ints, floats, bools, strings
    np.savez(path, **flatten_state(ckpt))
    opt.load_state_dict(unflatten_state(np.load(path, allow_pickle=False)))

The optimizer keeps a step counter ``t`` (steps already taken). The learning rate of the
step about to happen is ``opt.lr == schedule(t, base_lr)``, so a resumed run follows the
same learning rates as an uninterrupted one.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from mlpx.backend import is_numpy, namespace_of, to_numpy
from mlpx.fast import kernels

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "RMSprop",
    "Schedule",
    "StepSchedule",
    "WarmupCosineSchedule",
    "clip_grad_norm",
    "flatten_state",
    "global_norm",
    "make_optimizer",
    "make_schedule",
    "unflatten_state",
]


# --------------------------------------------------------------------------- value checks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _positive(key: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key} must be a positive finite number, got {value!r}")
    return float(value)


def _non_negative(key: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be a non-negative finite number, got {value!r}")
    return float(value)


def _unit_interval(key: str, value: Any, *, closed: bool) -> float:
    ok = _is_number(value) and (0 <= value <= 1 if closed else 0 <= value < 1)
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{key} must be a number in {interval}, got {value!r}")
    return float(value)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{key} must be a bool (true or false), got {value!r}")
    return bool(value)


def _int(key: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        ok = False
    else:
        ok = value >= minimum
    if not ok:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{key} must be {kind}, got {value!r}")
    return int(value)


def _fmt(value: Any) -> str:
    return repr(value)


# --------------------------------------------------------------------------- schedules


class Schedule:
    """A stateless learning-rate schedule: ``schedule(t, base_lr)`` is the lr of step ``t``.

    Steps are counted from 0: ``t`` is the number of optimizer steps already taken, so
    ``schedule(0, base_lr)`` is the learning rate of the very first update.
    """

    name: ClassVar[str]

    def __call__(self, t: int, base_lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``lr_t = base_lr``."""

    name: ClassVar[str] = "constant"

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr


@dataclass(frozen=True)
class StepSchedule(Schedule):
    """``lr_t = base_lr * gamma ** floor(t / step_size)`` (torch ``StepLR``)."""

    step_size: int
    gamma: float = 0.1
    name: ClassVar[str] = "step"

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _int("step_size", self.step_size, minimum=1))
        object.__setattr__(self, "gamma", _positive("gamma", self.gamma))

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class ExponentialSchedule(Schedule):
    """``lr_t = base_lr * gamma ** t`` (torch ``ExponentialLR``)."""

    gamma: float
    name: ClassVar[str] = "exponential"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", _positive("gamma", self.gamma))

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma**t


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    The closed form of torch ``CosineAnnealingLR``; like torch, it is periodic: past
    ``T_max`` the learning rate rises again (use ``warmup_cosine`` to stay at the floor).
    """

    T_max: int
    eta_min: float = 0.0
    name: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        object.__setattr__(self, "T_max", _int("T_max", self.T_max, minimum=1))
        object.__setattr__(self, "eta_min", _non_negative("eta_min", self.eta_min))

    def __call__(self, t: int, base_lr: float) -> float:
        cos = 1 + math.cos(math.pi * t / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * cos / 2


@dataclass(frozen=True)
class WarmupCosineSchedule(Schedule):
    """Linear warm-up, then cosine decay to ``min_lr``, then constant ``min_lr``.

    With ``W = warmup_steps``, ``T = total_steps`` and ``s = max(W - 1, 0)``::

        lr_t = base_lr * (t + 1) / W                                   for t < W
        lr_t = min_lr + (base_lr - min_lr) * (1 + cos(pi * p_t)) / 2   for t >= W
        p_t  = min(1, (t - s) / max(T - 1 - s, 1))

    The warm-up is torch ``LinearLR(start_factor=1/W, total_iters=W-1)``: the first step
    already uses ``base_lr / W`` (never a wasted step at lr 0), and step ``W - 1`` uses
    ``base_lr``. The decay then reaches ``min_lr`` exactly at the last step ``T - 1``.
    """

    warmup_steps: int
    total_steps: int
    min_lr: float = 0.0
    name: ClassVar[str] = "warmup_cosine"

    def __post_init__(self) -> None:
        w = _int("warmup_steps", self.warmup_steps, minimum=0)
        total = _int("total_steps", self.total_steps, minimum=1)
        if total < w:
            raise ValueError(f"total_steps must be >= warmup_steps ({w}), got {self.total_steps!r}")
        object.__setattr__(self, "warmup_steps", w)
        object.__setattr__(self, "total_steps", total)
        object.__setattr__(self, "min_lr", _non_negative("min_lr", self.min_lr))

    def __call__(self, t: int, base_lr: float) -> float:
        w = self.warmup_steps
        if t < w:
            return base_lr * (t + 1) / w
        start = max(w - 1, 0)
        progress = min(1.0, (t - start) / max(self.total_steps - 1 - start, 1))
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (
        ConstantSchedule,
        CosineSchedule,
        ExponentialSchedule,
        StepSchedule,
        WarmupCosineSchedule,
    )
}


def _check_kwargs(what: str, name: str, kwargs: Mapping[str, Any], accepted: Sequence[str]):
    for key in kwargs:
        if key not in accepted:
            raise ValueError(
                f"unknown {what} {key!r} for {name!r}; accepted: {', '.join(accepted) or 'none'}"
            )


def make_schedule(name: str, **kwargs: Any) -> Schedule:
    """Build the schedule registered as ``name`` (see ``SCHEDULES``) from keyword arguments."""
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(sorted(SCHEDULES))}, got {name!r}")
    cls = SCHEDULES[name]
    accepted = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    _check_kwargs("schedule argument", name, kwargs, accepted)
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name not in kwargs and f.default is f.default_factory  # no default
        ]
        raise ValueError(
            f"schedule {name!r} needs {', '.join(missing)}; got {sorted(kwargs)}"
        ) from None


def _as_schedule(schedule: Any) -> Schedule | None:
    """Accept ``None``, a ``Schedule``, a registry name, or ``{"name": ..., **kwargs}``."""
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str):
        return make_schedule(schedule)
    if isinstance(schedule, Mapping):
        kwargs = dict(schedule)
        name = kwargs.pop("name", None)
        return make_schedule(name, **kwargs)  # type: ignore[arg-type]
    raise ValueError(
        "schedule must be None, a schedule name, a mapping with a 'name' key or a Schedule, "
        f"got {schedule!r}"
    )


# --------------------------------------------------------------------------- optimizers

_State = dict[str, Any]


class Optimizer:
    """Base class: step counter, schedule, lazily created state, checkpoints.

    Subclasses define ``name``, ``defaults`` (hyper-parameter -> default value, lr
    excluded), ``_check`` (validation), ``_state_keys`` and ``_update_generic`` (and
    optionally ``_update_numpy``).
    """

    name: ClassVar[str]
    default_lr: ClassVar[float] = 1e-3
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(
        self, lr: float | None = None, *, schedule: Any = None, jit: Any = "auto", **hparams: Any
    ):
        _check_kwargs(
            "hyper-parameter", self.name, hparams, ["lr", *self.defaults, "schedule", "jit"]
        )
        # Whether the rule's compiled kernel (mlpx.fast.kernels) updates flat NumPy buffers.
        self.jit = kernels.resolve(jit, key="jit")
        self.base_lr = _positive("lr", self.default_lr if lr is None else lr)
        self.schedule: Schedule | None = _as_schedule(schedule)
        values = {**self.defaults, **hparams}
        self.hparams: dict[str, Any] = self._check(values)
        self.t = 0
        self._shapes: list[tuple[int, ...]] | None = None
        self._state: list[_State] | None = None
        self._pending: list[_State] | None = None  # loaded NumPy state, converted at step
        self._scratch: list[list[np.ndarray]] = []
        self._flat: _FlatLayout | None = None  # params and grads in one buffer each (NumPy)

    # -- hooks -----------------------------------------------------------------------
    def _check(self, hp: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_keys(self) -> tuple[str, ...]:
        return ()

    def _init_state(self, xp: Any, p: Any, g: Any) -> _State:
        return {key: xp.zeros_like(p) for key in self._state_keys()}

    def _update_generic(self, xp: Any, p: Any, g: Any, s: _State, lr: float, t: int) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    _update_numpy: Callable[..., None] | None = None

    def _update_flat(self, flat: _FlatLayout, lr: float, t: int) -> None:
        """The update of every parameter at once, on the flat buffers of ``flat``: one
        compiled pass when kernels are on (:meth:`_update_kernel`), else NumPy passes."""
        if self.jit and flat.p.dtype in _KERNEL_DTYPES and self._update_kernel(flat, lr, t):
            return
        if self._update_numpy is not None:
            self._update_numpy(flat.p, flat.g, flat.state, flat.scratch, lr, t)
        else:
            self._update_generic(np, flat.p, flat.g, flat.state, lr, t)

    def _update_kernel(self, flat: _FlatLayout, lr: float, t: int) -> bool:
        """The rule's :mod:`mlpx.fast.kernels` pass over the flat buffers (the same arithmetic
        as the NumPy code, bit for bit); False when there is none for this step."""
        return False

    # -- public ----------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate the next step will use (the schedule applied at step ``t``)."""
        if self.schedule is None:
            return self.base_lr
        return float(self.schedule(self.t, self.base_lr))

    def __repr__(self) -> str:
        parts = [f"lr={_fmt(self.base_lr)}"]
        parts += [f"{k}={_fmt(v)}" for k, v in self.hparams.items()]
        if self.schedule is not None:
            parts.append(f"schedule={self.schedule!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def step(self, params: Sequence[Any], grads: Sequence[Any]) -> None:
        """Update ``params`` in place from ``grads`` (same order); ``grads`` are not modified."""
        flat = self._flat
        if flat is not None and flat.matches(params, grads):  # the checks below were passed
            lr = self.lr
            self.t += 1
            self._flat_update(flat, lr)
            return
        if len(params) != len(grads):
            raise ValueError(
                f"grads must have one array per parameter: got {len(grads)} grads "
                f"for {len(params)} params"
            )
        shapes = [tuple(p.shape) for p in params]
        for i, g in enumerate(grads):
            if tuple(g.shape) != shapes[i]:
                raise ValueError(
                    f"grads[{i}] must have the shape of params[{i}] {shapes[i]}, "
                    f"got {tuple(g.shape)}"
                )
        if self._shapes is None:
            self._shapes = shapes
        elif shapes != self._shapes:
            raise ValueError(
                f"params must keep the shapes this optimizer state was made for "
                f"{self._shapes}, got {shapes}; build a new optimizer for a new model"
            )
        if not params:
            self.t += 1
            return
        xp = namespace_of(*params)  # grads may be NumPy scalars for 0-d params
        if not is_numpy(xp):
            _check_in_place("params", params)
        if self._state is None:
            if self._pending is not None:
                self._state = [
                    {k: _to_namespace(xp, v, p) for k, v in s.items()}
                    for s, p in zip(self._pending, params, strict=True)
                ]
                self._pending = None
            else:
                self._state = [{} for _ in params]
            self._scratch = [[] for _ in params]
        lr = self.lr
        self.t += 1
        if is_numpy(xp):
            self._flat = flat = _FlatLayout.build(params, grads, self)
            if flat is not None:
                self._flat_update(flat, lr)
                return
        fast = self._update_numpy if is_numpy(xp) else None
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = self._state[i]
            if not s:
                s.update(self._init_state(xp, p, g))
            if fast is not None:
                fast(p, g, s, self._scratch[i], lr, self.t)
            else:
                self._update_generic(xp, p, g, s, lr, self.t)

    def _flat_update(self, flat: _FlatLayout, lr: float) -> None:
        """One update of every parameter at once, on the flat buffers (elementwise rules)."""
        self._update_flat(flat, lr, self.t)
        state = flat.state
        known = flat.known
        if len(state) != len(known):
            flat.share(self._state)  # a state buffer was created: new views
            return
        for key, buffer in known.items():
            if state[key] is not buffer:
                flat.share(self._state)  # a state buffer was replaced: new views
                return

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint made of NumPy copies and plain Python values.

        Keys: ``name``, ``t`` (steps taken), ``lr`` (base lr), ``hparams`` (for reference;
        ``load_state_dict`` keeps the constructor's), ``shapes`` and ``state`` (one dict
        of NumPy arrays per parameter; empty lists before the first step). Save it with
        ``np.savez(path, **flatten_state(sd))``.
        """
        if self._state is not None:
            state = [
                {k: np.array(to_numpy(v), copy=True) for k, v in s.items()} for s in self._state
            ]
        elif self._pending is not None:
            state = [{k: v.copy() for k, v in s.items()} for s in self._pending]
        else:
            state = []
        hparams = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams.items()}
        return {
            "name": self.name,
            "t": self.t,
            "lr": self.base_lr,
            "hparams": hparams,
            "shapes": [list(s) for s in self._shapes or []],
            "state": state,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the step counter and the per-parameter state of ``state_dict``.

        Hyper-parameters, base lr and schedule stay those given to the constructor. The
        arrays are converted to the parameters' namespace, device and dtype at the next
        ``step``, which also checks that the parameters have the saved shapes.
        """
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in ("name", "t", "shapes", "state") if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict is missing {', '.join(missing)}")
        name = state_dict["name"]
        name = name.item() if isinstance(name, np.ndarray) else name
        if name != self.name:
            raise ValueError(
                f"state_dict['name'] is {name!r} but this optimizer is {self.name!r}; "
                f"build make_optimizer({name!r}, ...) to load it"
            )
        t = _int("state_dict['t']", _scalar(state_dict["t"]), minimum=0)
        try:
            shapes = [tuple(int(n) for n in s) for s in state_dict["shapes"]]
        except (TypeError, ValueError):
            raise ValueError(
                f"state_dict['shapes'] must be a list of shapes, got {state_dict['shapes']!r}"
            ) from None
        entries = list(state_dict["state"])
        keys = sorted(self._state_keys())
        if t > 0 and len(entries) != len(shapes):
            raise ValueError(
                f"state_dict['state'] must have one entry per parameter ({len(shapes)}), "
                f"got {len(entries)}"
            )
        if t == 0 and entries:
            raise ValueError("state_dict['state'] must be empty when state_dict['t'] is 0")
        if self._shapes is not None and shapes != self._shapes and (shapes or t > 0):
            raise ValueError(
                f"state_dict['shapes'] {shapes} does not match the parameters of this "
                f"optimizer {self._shapes}"
            )
        pending: list[_State] = []
        for i, (entry, shape) in enumerate(zip(entries, shapes, strict=True)):
            if not isinstance(entry, Mapping) or sorted(entry) != keys:
                got = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
                raise ValueError(
                    f"state_dict['state'][{i}] must have the keys {keys} of {self!r}, got {got}"
                )
            arrays = {k: np.array(entry[k], copy=True) for k in keys}
            for k, a in arrays.items():
                if a.shape != shape:
                    raise ValueError(
                        f"state_dict['state'][{i}][{k!r}] must have shape {shape}, got {a.shape}"
                    )
            pending.append(arrays)
        self.t = t
        self._shapes = shapes if (shapes or t > 0) else None
        self._state = None
        self._scratch = []
        self._flat = None
        self._pending = pending if t > 0 else None


def _flat_base(arrays: Sequence[Any]) -> np.ndarray | None:
    """The 1-d buffer that ``arrays`` tile, in order, as C-contiguous views; else None."""
    if not arrays or type(arrays[0]) is not np.ndarray:
        return None
    base = arrays[0].base
    if type(base) is not np.ndarray or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address = base.__array_interface__["data"][0]
    for a in arrays:
        if (
            type(a) is not np.ndarray
            or a.base is not base
            or a.dtype != base.dtype
            or not a.flags.c_contiguous
            or a.__array_interface__["data"][0] != address
        ):
            return None
        address += a.nbytes
    end = base.__array_interface__["data"][0] + base.nbytes
    return base if address == end and base.flags.writeable else None


class _FlatLayout:
    """NumPy params that tile one flat buffer in order, and grads that tile another alike.

    The update rules are elementwise, so running one on the flat buffers is the same
    arithmetic as running it on every parameter. The state gets flat buffers too; the
    optimizer's per-parameter state dicts hold views of them (checkpoints unchanged).
    """

    __slots__ = ("g", "grads", "known", "p", "params", "scratch", "shapes", "state")

    def __init__(self, params: list[Any], grads: list[Any], p: Any, g: Any) -> None:
        self.params, self.grads, self.p, self.g = params, grads, p, g
        self.shapes = [a.shape for a in params]
        self.state: _State = {}
        self.known: _State = {}
        self.scratch: list[np.ndarray] = []

    @classmethod
    def build(cls, params: Sequence[Any], grads: Sequence[Any], opt: Optimizer) -> Any:
        """The layout of ``params``/``grads`` with the optimizer's state moved into flat
        buffers, or None when they are not laid out that way (the per-array path runs)."""
        p, g = _flat_base(params), _flat_base(grads)
        if p is None or g is None or g.dtype != p.dtype or g is p:
            return None
        if any(a.shape != b.shape for a, b in zip(params, grads)):
            return None
        states = opt._state or []
        keys = set(states[0]) if states else set()
        if len(states) != len(params) or any(set(s) != keys for s in states):
            return None
        flat = cls(list(params), list(grads), p, g)
        if not keys:
            flat.state = opt._init_state(np, p, g)
        for key in sorted(keys):
            parts = [s[key] for s in states]
            buffer = _flat_base(parts)  # already flat: a layout rebuilt for new grads
            if buffer is None or buffer.size != p.size:
                buffer = np.empty(p.size, dtype=parts[0].dtype)
                for view, part in zip(_flat_views(buffer, flat.shapes), parts):
                    view[...] = part
            flat.state[key] = buffer
        flat.share(states)
        return flat

    def matches(self, params: Sequence[Any], grads: Sequence[Any]) -> bool:
        """Whether ``params`` are this layout's arrays and ``grads`` tile a buffer alike."""
        known = self.params
        if len(params) != len(known) or not all(map(operator.is_, params, known)):
            return False
        if len(grads) == len(known) and all(map(operator.is_, grads, self.grads)):
            return True
        g = _flat_base(grads)
        if g is None or g.dtype != self.p.dtype or g.size != self.p.size or g is self.p:
            return False
        if any(a.shape != shape for a, shape in zip(grads, self.shapes)):
            return False
        self.grads, self.g = list(grads), g
        return True

    def share(self, states: list[_State] | None) -> None:
        """Point every per-parameter state dict at views of the flat state buffers."""
        self.known = dict(self.state)
        if states is None:
            return
        for key, buffer in self.state.items():
            for s, view in zip(states, _flat_views(buffer, self.shapes)):
                s[key] = view


def _flat_views(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    views, start = [], 0
    for shape in shapes:
        stop = start + math.prod(shape)
        views.append(flat[start:stop].reshape(shape))
        start = stop
    return views


def _check_in_place(key: str, arrays: Sequence[Any]) -> None:
    for i, a in enumerate(arrays):
        if isinstance(a, np.generic):
            raise ValueError(
                f"{key}[{i}] is a NumPy scalar, which cannot be updated in place; "
                "pass a 0-d array (np.asarray(x)) instead"
            )


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _to_namespace(xp: Any, a: np.ndarray, like: Any) -> Any:
    """Copy NumPy array ``a`` into the namespace, device and dtype of ``like``."""
    if is_numpy(xp):
        return np.array(a, dtype=like.dtype, copy=True)
    from array_api_compat import device

    return xp.asarray(a, dtype=like.dtype, device=device(like), copy=True)


def _copy(xp: Any, g: Any) -> Any:
    if is_numpy(xp):
        return np.array(g, copy=True)
    return xp.asarray(g, copy=True)


def _scratch(buffers: list[np.ndarray], k: int, like: np.ndarray) -> np.ndarray:
    """The ``k``-th scratch buffer of a parameter, allocated on first use."""
    while len(buffers) <= k:
        buffers.append(np.empty_like(like))
    return buffers[k]


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum (torch ``SGD``).

    With ``g_t = grad + weight_decay * p`` and ``mu = momentum``, ``tau = dampening``::

        b_1 = g_1,   b_t = mu * b_(t-1) + (1 - tau) * g_t          (if mu != 0)
        d_t = g_t + mu * b_t  (nesterov)   |   b_t   |   g_t  (mu = 0)
        p  <- p - lr * d_t
    """

    name: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 1e-3
    defaults: ClassVar[dict[str, Any]] = {
        "momentum": 0.0,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }

    def _check(self, hp: dict[str, Any]) -> dict[str, Any]:
        out = {
            "momentum": _non_negative("momentum", hp["momentum"]),
            "dampening": _non_negative("dampening", hp["dampening"]),
            "nesterov": _flag("nesterov", hp["nesterov"]),
            "weight_decay": _non_negative("weight_decay", hp["weight_decay"]),
        }
        if out["nesterov"] and (out["momentum"] <= 0 or out["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening = 0, got "
                f"momentum={out['momentum']!r}, dampening={out['dampening']!r}"
            )
        return out

    def _state_keys(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.hparams["momentum"] != 0 else ()

    def _init_state(self, xp: Any, p: Any, g: Any) -> _State:
        return {}  # b_1 = g_1: the momentum buffer is created by the first update

    def _update_generic(self, xp: Any, p: Any, g: Any, s: _State, lr: float, t: int) -> None:
        hp = self.hparams
        mu, wd = hp["momentum"], hp["weight_decay"]
        if wd != 0:
            g = wd * p + g
        if mu != 0:
            buf = s.get("momentum_buffer")  # b_1 = g_1: created by the first update
            if buf is None:
                buf = s["momentum_buffer"] = _copy(xp, g)
            else:
                buf *= mu
                buf += (1 - hp["dampening"]) * g if hp["dampening"] != 0 else g
            g = mu * buf + g if hp["nesterov"] else buf
        p -= lr * g

    def _update_kernel(self, flat: _FlatLayout, lr: float, t: int) -> bool:
        hp = self.hparams
        mu, wd, damp = hp["momentum"], hp["weight_decay"], hp["dampening"]
        buf = flat.state.get("momentum_buffer")
        if mu != 0 and buf is None:  # b_1 = g_1: NumPy's first step creates the buffer
            return False
        c = np.array([wd, mu, 1 - damp, lr], flat.p.dtype)
        b = buf if buf is not None else flat.p  # (unused without momentum)
        kernels.get().sgd(flat.p, flat.g, b, c, wd != 0, mu != 0, damp != 0, hp["nesterov"])
        return True

    def _update_numpy(
        self, p: np.ndarray, g: np.ndarray, s: _State, bufs: list[np.ndarray], lr: float, t: int
    ) -> None:
        hp = self.hparams
        mu, wd = hp["momentum"], hp["weight_decay"]
        tmp = _scratch(bufs, 0, p)
        owned = False  # True when g is a scratch buffer that may be overwritten
        if wd != 0:  # g = wd * p + g
            np.multiply(p, wd, out=tmp)
            np.add(tmp, g, out=tmp)
            g, owned = tmp, True
        if mu != 0:
            buf = s.get("momentum_buffer")  # b_1 = g_1: created by the first update
            if buf is None:
                buf = s["momentum_buffer"] = np.array(g, copy=True)
            else:
                buf *= mu
                if hp["dampening"] != 0:  # never with nesterov: g is not needed afterwards
                    np.multiply(g, 1 - hp["dampening"], out=tmp)
                    buf += tmp
                else:
                    buf += g
            if hp["nesterov"]:  # g = mu * buf + g
                out = _scratch(bufs, 1, p) if g is tmp else tmp
                np.multiply(buf, mu, out=out)
                np.add(out, g, out=out)
                g, owned = out, True
            else:
                g, owned = buf, False
        out = g if owned else tmp
        np.multiply(g, lr, out=out)
        p -= out


class Momentum(SGD):
    """SGD with heavy-ball momentum (``momentum=0.9`` by default); see :class:`SGD`."""

    name: ClassVar[str] = "momentum"
    defaults: ClassVar[dict[str, Any]] = {**SGD.defaults, "momentum": 0.9}


class Nesterov(SGD):
    """SGD with Nesterov momentum (``momentum=0.9``, ``nesterov=True``); see :class:`SGD`."""

    name: ClassVar[str] = "nesterov"
    defaults: ClassVar[dict[str, Any]] = {**SGD.defaults, "momentum": 0.9, "nesterov": True}


def _lerp_(m: Any, g: Any, w: float) -> None:
    """``m <- m + w * (g - m)`` in place, in torch's two-branch form (exact at ``w = 1``)."""
    if w < 0.5:
        m += w * (g - m)
    else:  # m <- g - (1 - w) * (g - m), written as ((m - g) * (1 - w)) + g
        m -= g
        m *= 1 - w
        m += g


class Adam(Optimizer):
    r"""Adam (torch ``Adam``; ``amsgrad`` as in torch).

    With ``g_t = grad + weight_decay * p`` (coupled L2 decay; :class:`AdamW` decays the
    parameters instead)::

        m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
        v_t = beta2 * v_(t-1) + (1 - beta2) * g_t**2
        v^_t = max(v^_(t-1), v_t)  (amsgrad)   |   v_t
        p  <- p - lr / (1 - beta1**t) * m_t / (sqrt(v^_t) / sqrt(1 - beta2**t) + eps)

    computed as ``p += (m / (sqrt(v^) + eps c)) * (-lr c / (1 - beta1**t))`` with
    ``c = sqrt(1 - beta2**t)``: the same number, one pass over the parameters fewer.
    """

    name: ClassVar[str] = "adam"
    default_lr: ClassVar[float] = 1e-3
    decoupled: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
    }

    def _check(self, hp: dict[str, Any]) -> dict[str, Any]:
        betas = hp["betas"]
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        return {
            "betas": (
                _unit_interval("betas[0]", b1, closed=False),
                _unit_interval("betas[1]", b2, closed=False),
            ),
            "eps": _non_negative("eps", hp["eps"]),
            "weight_decay": _non_negative("weight_decay", hp["weight_decay"]),
            "amsgrad": _flag("amsgrad", hp["amsgrad"]),
        }

    def _state_keys(self) -> tuple[str, ...]:
        keys = ("exp_avg", "exp_avg_sq")
        return (*keys, "max_exp_avg_sq") if self.hparams["amsgrad"] else keys

    def _coefficients(self, t: int, lr: float) -> tuple[float, float]:
        b1, b2 = self.hparams["betas"]
        return lr / (1 - b1**t), (1 - b2**t) ** 0.5  # step size, sqrt(bias correction 2)

    def _update_generic(self, xp: Any, p: Any, g: Any, s: _State, lr: float, t: int) -> None:
        hp = self.hparams
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        if wd != 0:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = wd * p + g
        m, v = s["exp_avg"], s["exp_avg_sq"]
        _lerp_(m, g, 1 - b1)
        v *= b2
        v += ((1 - b2) * g) * g
        if hp["amsgrad"]:
            v = s["max_exp_avg_sq"] = xp.maximum(s["max_exp_avg_sq"], v)
        step_size, bc2_sqrt = self._coefficients(t, lr)
        # torch's step_size * m / (sqrt(v) / bc2_sqrt + eps), with bc2_sqrt moved out of
        # the denominator: one pass over the parameters fewer.
        denom = xp.sqrt(v) + hp["eps"] * bc2_sqrt
        p += (m / denom) * (-step_size * bc2_sqrt)

    def _update_kernel(self, flat: _FlatLayout, lr: float, t: int) -> bool:
        hp = self.hparams
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        step_size, bc2_sqrt = self._coefficients(t, lr)
        s = flat.state
        m, v = s["exp_avg"], s["exp_avg_sq"]
        coupled = 0.0 if self.decoupled else wd
        decay = 1 - lr * wd if self.decoupled and wd != 0 else 1.0
        w = 1 - b1  # m's lerp weight, as in _adam_kernel
        eps, scale = hp["eps"] * bc2_sqrt, -step_size * bc2_sqrt
        coef = np.array(
            [coupled, w, 1 - w, b2, 1 - b2, eps, scale, decay, 1.0 if w < 0.5 else 0.0],
            flat.p.dtype,
        )
        vmax = s["max_exp_avg_sq"] if hp["amsgrad"] else m  # (unused without amsgrad)
        kernels.get().adam(flat.p, flat.g, m, v, vmax, coef, hp["amsgrad"])
        return True

    def _update_numpy(
        self, p: np.ndarray, g: np.ndarray, s: _State, bufs: list[np.ndarray], lr: float, t: int
    ) -> None:
        hp = self.hparams
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        step_size, bc2_sqrt = self._coefficients(t, lr)
        eps, scale = hp["eps"] * bc2_sqrt, -step_size * bc2_sqrt
        if self.decoupled and wd != 0:
            p *= 1 - lr * wd
        coupled = wd if not self.decoupled else 0.0
        m, v = s["exp_avg"], s["exp_avg_sq"]
        vmax = s.get("max_exp_avg_sq") if hp["amsgrad"] else None
        size = p.size
        chunk_size = _CHUNK_BYTES // p.itemsize
        if size <= chunk_size or not all(
            a.flags.c_contiguous for a in ((p, g, m, v) if vmax is None else (p, g, m, v, vmax))
        ):
            d = _scratch(bufs, 0, p)
            tmp = _scratch(bufs, 1, p) if coupled != 0 else d
            _adam_kernel(p, g, m, v, vmax, d, tmp, b1, b2, coupled, eps, scale)
            return
        # Large parameters in chunks that stay in the L2 cache across the dozen passes.
        pf, gf, mf, vf = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
        vmf = vmax.reshape(-1) if vmax is not None else None
        if not bufs or bufs[0].shape != (chunk_size,):
            bufs[:] = [np.empty(chunk_size, p.dtype) for _ in range(2 if coupled != 0 else 1)]
        chunk = bufs[0]
        other = bufs[1] if coupled != 0 else chunk
        for start in range(0, size, chunk_size):
            stop = min(start + chunk_size, size)
            part = slice(start, stop)
            d, tmp = chunk[: stop - start], other[: stop - start]
            _adam_kernel(
                pf[part],
                gf[part],
                mf[part],
                vf[part],
                vmf[part] if vmf is not None else None,
                d,
                tmp,
                b1,
                b2,
                coupled,
                eps,
                scale,
            )


# Elements per chunk of the NumPy Adam update: 256 KiB per array, so that the parameter,
# gradient, two moments and a scratch chunk stay in a 2 MiB L2 cache across the dozen
# passes (measured on (a), 670k parameters: float32 0.76 -> 0.70 ms per step; float64
# unchanged). Smaller chunks lose more to NumPy's per-call overhead than they gain.
_CHUNK_BYTES = 1 << 18
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _adam_kernel(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    vmax: np.ndarray | None,
    d: np.ndarray,
    tmp: np.ndarray,
    b1: float,
    b2: float,
    wd: float,
    eps: float,
    scale: float,
) -> None:
    """:meth:`Adam._update_generic`'s operations on NumPy arrays with ``out=`` (no
    temporaries): ``g`` (+ coupled decay ``wd * p``), then ``m``, ``v``, ``p`` in place."""
    if wd != 0:  # g = wd * p + g
        np.multiply(p, wd, out=tmp)
        np.add(tmp, g, out=tmp)
        g = tmp
    w = 1 - b1  # m += w * (g - m), in torch's two-branch form (exact at w = 1)
    if w < 0.5:
        np.subtract(g, m, out=d)
        d *= w
        m += d
    else:
        m -= g
        m *= 1 - w
        m += g
    v *= b2  # v += ((1 - b2) * g) * g
    np.multiply(g, 1 - b2, out=d)
    d *= g
    v += d
    if vmax is not None:
        v = np.maximum(vmax, v, out=vmax)
    np.sqrt(v, out=d)  # denom = sqrt(v) + eps * bc2_sqrt
    d += eps
    np.divide(m, d, out=d)  # p += (m / denom) * (-step_size * bc2_sqrt)
    d *= scale
    p += d


class AdamW(Adam):
    r"""AdamW (torch ``AdamW``): Adam with decoupled weight decay.

    Before the Adam update of :class:`Adam` (computed from the raw gradient)::

        p <- p * (1 - lr * weight_decay)
    """

    name: ClassVar[str] = "adamw"
    decoupled: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {**Adam.defaults, "weight_decay": 1e-2}


class RMSprop(Optimizer):
    r"""RMSprop (torch ``RMSprop``).

    With ``g_t = grad + weight_decay * p``::

        s_t = alpha * s_(t-1) + (1 - alpha) * g_t**2
        a_t = alpha * a_(t-1) + (1 - alpha) * g_t                 (centered)
        r_t = sqrt(s_t - a_t**2) + eps  (centered)  |  sqrt(s_t) + eps
        b_t = momentum * b_(t-1) + g_t / r_t,   p <- p - lr * b_t  (momentum > 0)
        p  <- p - lr * g_t / r_t                                    (momentum = 0)
    """

    name: ClassVar[str] = "rmsprop"
    default_lr: ClassVar[float] = 1e-2
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    }

    def _check(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            "alpha": _unit_interval("alpha", hp["alpha"], closed=True),
            "eps": _non_negative("eps", hp["eps"]),
            "weight_decay": _non_negative("weight_decay", hp["weight_decay"]),
            "momentum": _non_negative("momentum", hp["momentum"]),
            "centered": _flag("centered", hp["centered"]),
        }

    def _state_keys(self) -> tuple[str, ...]:
        keys: tuple[str, ...] = ("square_avg",)
        if self.hparams["centered"]:
            keys += ("grad_avg",)
        if self.hparams["momentum"] > 0:
            keys += ("momentum_buffer",)
        return keys

    def _update_kernel(self, flat: _FlatLayout, lr: float, t: int) -> bool:
        hp = self.hparams
        alpha, wd, mom = hp["alpha"], hp["weight_decay"], hp["momentum"]
        s = flat.state
        w = 1 - alpha  # _lerp_'s weight for grad_avg
        c = np.array([wd, alpha, 1 - alpha, w, 1 - w, hp["eps"], mom, lr, -lr], flat.p.dtype)
        sq = s["square_avg"]
        ga = s.get("grad_avg", sq)  # (unused unless centered)
        buf = s.get("momentum_buffer", sq)  # (unused without momentum)
        kernels.get().rmsprop(
            flat.p, flat.g, sq, ga, buf, c, wd != 0, hp["centered"], w < 0.5, mom > 0
        )
        return True

    def _update_generic(self, xp: Any, p: Any, g: Any, s: _State, lr: float, t: int) -> None:
        hp = self.hparams
        alpha, wd = hp["alpha"], hp["weight_decay"]
        if wd != 0:
            g = wd * p + g
        sq = s["square_avg"]
        sq *= alpha
        sq += ((1 - alpha) * g) * g
        if hp["centered"]:
            ga = s["grad_avg"]
            _lerp_(ga, g, 1 - alpha)
            avg = xp.sqrt(sq - ga * ga)
        else:
            avg = xp.sqrt(sq)
        avg += hp["eps"]
        if hp["momentum"] > 0:
            buf = s["momentum_buffer"]
            buf *= hp["momentum"]
            buf += g / avg
            p -= lr * buf
        else:
            p += (-lr * g) / avg


class Adagrad(Optimizer):
    r"""Adagrad (torch ``Adagrad``).

    With ``g_t = grad + weight_decay * p`` and ``S_0 = initial_accumulator_value``::

        S_t = S_(t-1) + g_t**2
        p  <- p - lr / (1 + (t - 1) * lr_decay) * g_t / (sqrt(S_t) + eps)
    """

    name: ClassVar[str] = "adagrad"
    default_lr: ClassVar[float] = 1e-2
    defaults: ClassVar[dict[str, Any]] = {
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    }

    def _check(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {
            "lr_decay": _non_negative("lr_decay", hp["lr_decay"]),
            "weight_decay": _non_negative("weight_decay", hp["weight_decay"]),
            "initial_accumulator_value": _non_negative(
                "initial_accumulator_value", hp["initial_accumulator_value"]
            ),
            "eps": _non_negative("eps", hp["eps"]),
        }

    def _state_keys(self) -> tuple[str, ...]:
        return ("sum",)

    def _init_state(self, xp: Any, p: Any, g: Any) -> _State:
        return {"sum": xp.full_like(p, self.hparams["initial_accumulator_value"])}

    def _update_kernel(self, flat: _FlatLayout, lr: float, t: int) -> bool:
        hp = self.hparams
        clr = lr / (1 + (t - 1) * hp["lr_decay"])
        c = np.array([hp["weight_decay"], -clr, hp["eps"]], flat.p.dtype)
        kernels.get().adagrad(flat.p, flat.g, flat.state["sum"], c, hp["weight_decay"] != 0)
        return True

    def _update_generic(self, xp: Any, p: Any, g: Any, s: _State, lr: float, t: int) -> None:
        hp = self.hparams
        if hp["weight_decay"] != 0:
            g = hp["weight_decay"] * p + g
        clr = lr / (1 + (t - 1) * hp["lr_decay"])
        acc = s["sum"]
        acc += g * g
        p += (-clr * g) / (xp.sqrt(acc) + hp["eps"])


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (Adagrad, Adam, AdamW, Momentum, Nesterov, RMSprop, SGD)
}


def make_optimizer(
    name: str, lr: float | None = None, schedule: Any = None, *, jit: Any = "auto", **hparams: Any
) -> Optimizer:
    """Build the optimizer registered as ``name`` (see ``OPTIMIZERS``).

    ``lr`` defaults to the optimizer's torch default; ``schedule`` is ``None`` (constant),
    a ``Schedule``, a name from ``SCHEDULES`` or a mapping ``{"name": ..., **kwargs}``;
    ``hparams`` are the torch hyper-parameters of that optimizer (``betas``, ``eps``, ...).
    ``jit`` (``"auto"``, ``"true"``, ``"false"``): whether NumPy parameters are updated by
    the rule's compiled kernel in :mod:`mlpx.fast.kernels` (Numba; bit-identical results).
    """
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(sorted(OPTIMIZERS))}, got {name!r}")
    return OPTIMIZERS[name](lr, schedule=schedule, jit=jit, **hparams)


# --------------------------------------------------------------------------- gradients


def _norm(xp: Any, g: Any) -> float:
    if is_numpy(xp):
        return float(np.linalg.norm(g.reshape(-1)))
    linalg = getattr(xp, "linalg", None)
    if linalg is not None and hasattr(linalg, "vector_norm"):
        return float(linalg.vector_norm(g))
    return float(xp.sqrt(xp.sum(g * g)))


def global_norm(grads: Sequence[Any]) -> float:
    """``||(g_1, ..., g_n)||_2 = sqrt(sum_i ||g_i||_2**2)``, the norm of all grads as one vector."""
    if not grads:
        return 0.0
    xp = namespace_of(*grads)
    return math.sqrt(sum(_norm(xp, g) ** 2 for g in grads))


def clip_grad_norm(grads: Sequence[Any], max_norm: float) -> float:
    """Scale ``grads`` in place so that their global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with ``n = global_norm(grads)`` (returned, as
    measured before clipping) every grad is multiplied by ``max_norm / (n + 1e-6)`` when
    that factor is below 1. A non-finite ``n`` is returned and the grads are left as they
    are (torch would fill them with nan), so the caller can skip the step.
    """
    max_norm = _positive("max_norm", max_norm)
    norm = global_norm(grads)
    coef = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and coef < 1:
        xp = namespace_of(*grads)
        if not is_numpy(xp):
            _check_in_place("grads", grads)
        for g in grads:
            if is_numpy(xp):
                np.multiply(g, coef, out=g)
            else:
                g *= coef
    return norm


# --------------------------------------------------------------------------- checkpoints

_LIST, _DICT = "#list", "#dict"


def flatten_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested ``state_dict`` into ``{"a/b/0/c": array}`` for ``np.savez``.

    Every value becomes a non-object NumPy array (loadable with ``allow_pickle=False``);
    lists and dicts leave ``<path>/#list`` and ``<path>/#dict`` markers holding their
    length, so that ``unflatten_state`` rebuilds them exactly, empty ones included.
    """
    out: dict[str, np.ndarray] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            out[f"{path}/{_DICT}" if path else _DICT] = np.asarray(len(value))
            for key, item in value.items():
                if not isinstance(key, str) or "/" in key or key.startswith("#"):
                    raise ValueError(f"state keys must be strings without '/', got {key!r}")
                walk(item, f"{path}/{key}" if path else key)
        elif isinstance(value, (list, tuple)):
            out[f"{path}/{_LIST}"] = np.asarray(len(value))
            for i, item in enumerate(value):
                walk(item, f"{path}/{i}")
        elif isinstance(value, (np.ndarray, np.generic, bool, int, float, str)):
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise ValueError(f"state[{path!r}] must not be an object array")
            out[path] = array
        else:
            raise ValueError(
                f"state[{path!r}] must be an array, bool, int, float or str, "
                f"got {type(value).__name__}"
            )

    walk(state, prefix)
    return out


def unflatten_state(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``flatten_state`` (accepts the ``NpzFile`` returned by ``np.load``).

    0-d arrays come back as Python scalars (``bool``, ``int``, ``float``, ``str``).
    """
    tree: dict[str, Any] = {}
    for key in flat.keys():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = np.asarray(flat[key])

    def build(node: Any) -> Any:
        if not isinstance(node, dict):
            return node.item() if node.ndim == 0 else node
        if _LIST in node:
            return [build(node[str(i)]) for i in range(int(node[_LIST]))]
        return {k: build(v) for k, v in node.items() if k != _DICT}

    return build(tree)

"""First-order optimizers and gradient clipping, each update rule written once.

The rules are ``torch.optim``'s (single-tensor code paths, same hyper-parameter names and
defaults): one :meth:`Optimizer.update` each, its equation in the docstring, applied to a
parameter with in-place operators (``p -= lr * g``) of the parameters' array namespace
(:mod:`mlpx.backend`: NumPy, torch, cupy, ``array_api_strict``). Hyper-parameters are
declared once per rule (``HYPERPARAMETERS``, :class:`mlpx.checks.Param`) and read by the
constructor and by :func:`check_hyperparameters` (a config's ``optimizer`` section,
checked without building anything). Schedules: :mod:`mlpx.nn.schedules`; checkpoint
format: :mod:`mlpx.nn.state` (both re-exported here). Usage::

    opt = make_optimizer("adam", lr=1e-3, schedule={"name": "cosine", "T_max": 1000})
    opt.step(params, grads)        # params updated in place, grads left untouched
    np.savez(path, **flatten_state(opt.state_dict()))
    opt.load_state_dict(unflatten_state(np.load(path, allow_pickle=False)))

``opt.t`` counts the steps taken; the next one uses ``opt.lr == schedule(t, base_lr)``, so
a resumed run follows the learning rates of an uninterrupted one. Training on NumPy runs
these rules on an MLP's whole flat parameter buffer at once (no temporaries, optional
compiled kernels) through :class:`mlpx.fast.optim.FlatOptimizer`, tested bit-identical to
:meth:`Optimizer.step`; it uses only public state, and this module knows nothing of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from mlpx.backend import is_numpy, namespace_of, to_numpy
from mlpx.checks import Flag, Number, Pair, Param, check_params, jit_setting
from mlpx.nn.schedules import (
    SCHEDULES,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    Schedule,
    StepSchedule,
    WarmupCosineSchedule,
    check_schedule,
    make_schedule,
)
from mlpx.nn.state import check_state_dict, flatten_state, unflatten_state

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
    "check_hyperparameters",
    "check_schedule",
    "clip_grad_norm",
    "flatten_state",
    "global_norm",
    "make_optimizer",
    "make_schedule",
    "unflatten_state",
]

State = dict[str, Any]

_POSITIVE = Number(0, low_open=True)
_NON_NEGATIVE = Number(0)
_UNIT = Number(0, 1)  # [0, 1]
_UNIT_OPEN = Number(0, 1, high_open=True)  # [0, 1)
#: Keys a config's optimizer section may hold besides the hyper-parameters (and ``name``).
EXTRAS = ("schedule", "clip_norm", "jit")


def _lr(default: float) -> Param:
    return Param(_POSITIVE, default, "learning rate (of step 0, before any schedule)")


def _with_defaults(declared: dict[str, Param], **defaults: Any) -> dict[str, Param]:
    """``declared`` with other defaults (``Momentum`` is ``SGD`` with ``momentum=0.9``)."""
    return {k: replace(p, default=defaults[k]) if k in defaults else p for k, p in declared.items()}


def _check_in_place(key: str, arrays: Sequence[Any]) -> None:
    for i, a in enumerate(arrays):
        if isinstance(a, np.generic):
            raise ValueError(
                f"{key}[{i}] is a NumPy scalar, which cannot be updated in place; "
                "pass a 0-d array (np.asarray(x)) instead"
            )


def _to_namespace(xp: Any, a: np.ndarray, like: Any) -> Any:
    """Copy NumPy array ``a`` into the namespace, device and dtype of ``like``."""
    if is_numpy(xp):
        return np.array(a, dtype=like.dtype, copy=True)
    from array_api_compat import device

    return xp.asarray(a, dtype=like.dtype, device=device(like), copy=True)


def lerp_(m: Any, g: Any, w: float) -> None:
    """``m <- m + w * (g - m)`` in place, in torch's two-branch form (exact at ``w = 1``)."""
    if w < 0.5:
        m += w * (g - m)
    else:  # m <- g - (1 - w) * (g - m), written as ((m - g) * (1 - w)) + g
        m -= g
        m *= 1 - w
        m += g


class Optimizer:
    """Base class: step counter ``t``, schedule, lazily created per-parameter state.

    A rule defines ``name``, ``HYPERPARAMETERS`` (``lr`` first, with its torch default),
    :meth:`state_keys`, :meth:`update` (the equation) and, when it has rules between
    hyper-parameters, :meth:`check_combination`. Public state, for the fast path too:

    t : steps taken.            lr : the learning rate of the next step (schedule applied).
    base_lr, hparams : the checked constructor arguments (hparams without lr).
    jit : ``"auto"``, ``"true"`` or ``"false"``, whether :mod:`mlpx.fast` may use its
        compiled kernels for this optimizer (nothing here reads it).
    state : one dict of arrays per parameter (``None`` before the first step or after
        :meth:`load_state_dict`, see :meth:`prepare`); shapes : their shapes.
    """

    name: ClassVar[str]
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = {"lr": _lr(1e-3)}

    def __init__(
        self, lr: float | None = None, *, schedule: Any = None, jit: Any = "auto", **hparams: Any
    ) -> None:
        given = hparams if lr is None else {"lr": lr, **hparams}
        values = type(self).check(given, extra=("schedule", "jit"))
        self.base_lr: float = values.pop("lr")
        self.hparams: dict[str, Any] = values
        self.schedule: Schedule | None = check_schedule(schedule, prefix="")
        self.jit: str = jit_setting(jit, key="jit")
        self.t = 0
        self.shapes: list[tuple[int, ...]] | None = None
        self.state: list[State] | None = None
        self._loaded: list[dict[str, np.ndarray]] | None = None  # converted by prepare()

    # -- declarations ----------------------------------------------------------------
    @classmethod
    def check(
        cls, given: Mapping[str, Any], *, prefix: str = "", extra: Sequence[str] = ()
    ) -> dict[str, Any]:
        """``given`` hyper-parameters checked, defaults filled in (``lr`` included);
        ``extra`` are further keys accepted (and left out of the result)."""
        accepted = [*cls.HYPERPARAMETERS, *extra]
        for key in given:
            if key not in accepted:
                raise ValueError(
                    f"unknown hyper-parameter {prefix + key!r} for {cls.name!r}; "
                    f"accepted: {', '.join(accepted)}"
                )
        own = {k: v for k, v in given.items() if k in cls.HYPERPARAMETERS}
        values = check_params(
            f"hyper-parameter of {cls.name!r}", cls.HYPERPARAMETERS, own, prefix=prefix
        )
        cls.check_combination(values, prefix=prefix)
        return values

    @classmethod
    def check_combination(cls, hp: dict[str, Any], *, prefix: str = "") -> None:
        """Rules between hyper-parameters (none by default); ``ValueError`` when broken."""

    def state_keys(self) -> tuple[str, ...]:
        """The keys of a parameter's state (its ``state_dict`` entry)."""
        return ()

    def init_state(self, xp: Any, p: Any, g: Any) -> State:
        """The state of a parameter ``p`` before its first update (zeros by default)."""
        return {key: xp.zeros_like(p) for key in self.state_keys()}

    def update(self, xp: Any, p: Any, g: Any, s: State, lr: float, t: int) -> None:
        """Update ``p`` in place from gradient ``g`` and state ``s`` at step ``t`` (from 1)."""
        raise NotImplementedError  # pragma: no cover - abstract

    # -- public ----------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate the next step will use (the schedule applied at step ``t``)."""
        if self.schedule is None:
            return self.base_lr
        return float(self.schedule(self.t, self.base_lr))

    def __repr__(self) -> str:
        parts = [f"lr={self.base_lr!r}", *(f"{k}={v!r}" for k, v in self.hparams.items())]
        if self.schedule is not None:
            parts.append(f"schedule={self.schedule!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def prepare(self, params: Sequence[Any], grads: Sequence[Any]) -> list[State]:
        """Check ``params``/``grads`` against this optimizer and return :attr:`state`.

        The first call records the shapes; later ones must pass the same. State loaded by
        :meth:`load_state_dict` becomes arrays of the parameters' namespace, device and
        dtype here. Entries of parameters not yet updated are empty dicts (the next step
        fills them with :meth:`init_state`).
        """
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
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            raise ValueError(
                f"params must keep the shapes this optimizer state was made for "
                f"{self.shapes}, got {shapes}; build a new optimizer for a new model"
            )
        if self.state is None:
            if self._loaded is not None and params:
                xp = namespace_of(*params)
                self.state = [
                    {k: _to_namespace(xp, v, p) for k, v in s.items()}
                    for s, p in zip(self._loaded, params, strict=True)
                ]
            else:
                self.state = [{} for _ in params]
            self._loaded = None
        return self.state

    def step(self, params: Sequence[Any], grads: Sequence[Any]) -> None:
        """Update ``params`` in place from ``grads`` (same order); ``grads`` are not modified.

        One :meth:`update` per parameter, on any array namespace.
        """
        states = self.prepare(params, grads)
        lr = self.lr
        self.t += 1
        if not params:
            return
        xp = namespace_of(*params)  # grads may be NumPy scalars for 0-d params
        _check_in_place("params", params)
        for p, g, s in zip(params, grads, states, strict=True):
            if not s:
                s.update(self.init_state(xp, p, g))
            self.update(xp, p, g, s, lr, self.t)

    def state_dict(self) -> dict[str, Any]:
        """A checkpoint made of NumPy copies and plain Python values.

        Keys: ``name``, ``t`` (steps taken), ``lr`` (base lr), ``hparams`` (for reference;
        ``load_state_dict`` keeps the constructor's), ``shapes`` and ``state`` (one dict
        of NumPy arrays per parameter; empty lists before the first step). Save it with
        ``np.savez(path, **flatten_state(sd))``.
        """
        if self.state is not None:
            state = [
                {k: np.array(to_numpy(v), copy=True) for k, v in s.items()} for s in self.state
            ]
        elif self._loaded is not None:
            state = [{k: v.copy() for k, v in s.items()} for s in self._loaded]
        else:
            state = []
        hparams = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams.items()}
        return {
            "name": self.name,
            "t": self.t,
            "lr": self.base_lr,
            "hparams": hparams,
            "shapes": [list(s) for s in self.shapes or []],
            "state": state,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the step counter and the per-parameter state of ``state_dict``.

        Hyper-parameters, base lr and schedule stay those given to the constructor. The
        arrays are converted to the parameters' namespace, device and dtype at the next
        ``step``, which also checks that the parameters have the saved shapes.
        """
        t, shapes, loaded = check_state_dict(
            state_dict, name=self.name, keys=self.state_keys(), owner=repr(self)
        )
        if self.shapes is not None and shapes != self.shapes and (shapes or t > 0):
            raise ValueError(
                f"state_dict['shapes'] {shapes} does not match the parameters of this "
                f"optimizer {self.shapes}"
            )
        self.t = t
        self.shapes = shapes if (shapes or t > 0) else None
        self.state = None
        self._loaded = loaded if t > 0 else None


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional (Nesterov) momentum (torch ``SGD``)."""

    name: ClassVar[str] = "sgd"
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = {
        "lr": _lr(1e-3),
        "momentum": Param(_NON_NEGATIVE, 0.0, "momentum factor mu (0: none)"),
        "dampening": Param(_NON_NEGATIVE, 0.0, "dampening tau of the momentum"),
        "nesterov": Param(Flag(), False, "Nesterov momentum"),
        "weight_decay": Param(_NON_NEGATIVE, 0.0, "L2 penalty added to the gradient"),
    }

    @classmethod
    def check_combination(cls, hp: dict[str, Any], *, prefix: str = "") -> None:
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(
                f"{prefix}nesterov=True requires momentum > 0 and dampening = 0, got "
                f"momentum={hp['momentum']!r}, dampening={hp['dampening']!r}"
            )

    def state_keys(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.hparams["momentum"] != 0 else ()

    def init_state(self, xp: Any, p: Any, g: Any) -> State:
        return {}  # b_1 = g_1: the momentum buffer is created by the first update

    def update(self, xp: Any, p: Any, g: Any, s: State, lr: float, t: int) -> None:
        r"""With ``g_t = grad + weight_decay * p``, ``mu = momentum``, ``tau = dampening``::

        b_1 = g_1,   b_t = mu * b_(t-1) + (1 - tau) * g_t          (if mu != 0)
        d_t = g_t + mu * b_t  (nesterov)   |   b_t   |   g_t  (mu = 0)
        p  <- p - lr * d_t
        """
        hp = self.hparams
        mu, wd = hp["momentum"], hp["weight_decay"]
        if wd != 0:
            g = wd * p + g
        if mu != 0:
            buf = s.get("momentum_buffer")  # b_1 = g_1: created by the first update
            if buf is None:
                buf = s["momentum_buffer"] = xp.asarray(g, copy=True)
            else:
                buf *= mu
                buf += (1 - hp["dampening"]) * g if hp["dampening"] != 0 else g
            g = mu * buf + g if hp["nesterov"] else buf
        p -= lr * g


class Momentum(SGD):
    """SGD with heavy-ball momentum (``momentum=0.9`` by default); see :class:`SGD`."""

    name: ClassVar[str] = "momentum"
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = _with_defaults(SGD.HYPERPARAMETERS, momentum=0.9)


class Nesterov(SGD):
    """SGD with Nesterov momentum (``momentum=0.9``, ``nesterov=True``); see :class:`SGD`."""

    name: ClassVar[str] = "nesterov"
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = _with_defaults(
        SGD.HYPERPARAMETERS, momentum=0.9, nesterov=True
    )


class Adam(Optimizer):
    r"""Adam (torch ``Adam``; ``amsgrad`` as in torch). :class:`AdamW` decays the
    parameters instead of the gradient (``decoupled``)."""

    name: ClassVar[str] = "adam"
    decoupled: ClassVar[bool] = False
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = {
        "lr": _lr(1e-3),
        "betas": Param(Pair(_UNIT_OPEN), (0.9, 0.999), "decay rates (beta1, beta2) of m and v"),
        "eps": Param(_NON_NEGATIVE, 1e-8, "added to the denominator"),
        "weight_decay": Param(_NON_NEGATIVE, 0.0, "L2 penalty (AdamW: decoupled decay)"),
        "amsgrad": Param(Flag(), False, "use the running maximum of v (AMSGrad)"),
    }

    def state_keys(self) -> tuple[str, ...]:
        keys = ("exp_avg", "exp_avg_sq")
        return (*keys, "max_exp_avg_sq") if self.hparams["amsgrad"] else keys

    def coefficients(self, lr: float, t: int) -> tuple[float, float]:
        """``(lr / (1 - beta1**t), sqrt(1 - beta2**t))``: step size, sqrt(bias correction 2)."""
        b1, b2 = self.hparams["betas"]
        return lr / (1 - b1**t), (1 - b2**t) ** 0.5

    def update(self, xp: Any, p: Any, g: Any, s: State, lr: float, t: int) -> None:
        r"""With ``g_t = grad + weight_decay * p`` (Adam; AdamW first decays
        ``p <- p * (1 - lr * weight_decay)`` and keeps the raw gradient)::

            m_t = beta1 * m_(t-1) + (1 - beta1) * g_t
            v_t = beta2 * v_(t-1) + (1 - beta2) * g_t**2
            v^_t = max(v^_(t-1), v_t)  (amsgrad)   |   v_t
            p  <- p - lr / (1 - beta1**t) * m_t / (sqrt(v^_t) / sqrt(1 - beta2**t) + eps)

        computed as ``p += (m / (sqrt(v^) + eps c)) * (-lr c / (1 - beta1**t))`` with
        ``c = sqrt(1 - beta2**t)``: the same number, one pass over the parameters fewer.
        """
        hp = self.hparams
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        if wd != 0:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = wd * p + g
        m, v = s["exp_avg"], s["exp_avg_sq"]
        lerp_(m, g, 1 - b1)
        v *= b2
        v += ((1 - b2) * g) * g
        if hp["amsgrad"]:
            vmax = s["max_exp_avg_sq"]
            vmax[...] = xp.maximum(vmax, v)
            v = vmax
        step_size, bc2_sqrt = self.coefficients(lr, t)
        denom = xp.sqrt(v) + hp["eps"] * bc2_sqrt
        p += (m / denom) * (-step_size * bc2_sqrt)


class AdamW(Adam):
    r"""AdamW (torch ``AdamW``): Adam with decoupled weight decay; see :meth:`Adam.update`."""

    name: ClassVar[str] = "adamw"
    decoupled: ClassVar[bool] = True
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = _with_defaults(
        Adam.HYPERPARAMETERS, weight_decay=1e-2
    )


class RMSprop(Optimizer):
    r"""RMSprop (torch ``RMSprop``), optionally centered and with momentum."""

    name: ClassVar[str] = "rmsprop"
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = {
        "lr": _lr(1e-2),
        "alpha": Param(_UNIT, 0.99, "decay rate of the squared-gradient average"),
        "eps": Param(_NON_NEGATIVE, 1e-8, "added to the denominator"),
        "weight_decay": Param(_NON_NEGATIVE, 0.0, "L2 penalty added to the gradient"),
        "momentum": Param(_NON_NEGATIVE, 0.0, "momentum factor (0: none)"),
        "centered": Param(Flag(), False, "divide by the gradient's estimated variance"),
    }

    def state_keys(self) -> tuple[str, ...]:
        keys: tuple[str, ...] = ("square_avg",)
        if self.hparams["centered"]:
            keys += ("grad_avg",)
        if self.hparams["momentum"] > 0:
            keys += ("momentum_buffer",)
        return keys

    def update(self, xp: Any, p: Any, g: Any, s: State, lr: float, t: int) -> None:
        r"""With ``g_t = grad + weight_decay * p``::

        s_t = alpha * s_(t-1) + (1 - alpha) * g_t**2
        a_t = alpha * a_(t-1) + (1 - alpha) * g_t                 (centered)
        r_t = sqrt(s_t - a_t**2) + eps  (centered)  |  sqrt(s_t) + eps
        b_t = momentum * b_(t-1) + g_t / r_t,   p <- p - lr * b_t  (momentum > 0)
        p  <- p - lr * g_t / r_t                                    (momentum = 0)
        """
        hp = self.hparams
        alpha, wd = hp["alpha"], hp["weight_decay"]
        if wd != 0:
            g = wd * p + g
        sq = s["square_avg"]
        sq *= alpha
        sq += ((1 - alpha) * g) * g
        if hp["centered"]:
            ga = s["grad_avg"]
            lerp_(ga, g, 1 - alpha)
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
    r"""Adagrad (torch ``Adagrad``)."""

    name: ClassVar[str] = "adagrad"
    HYPERPARAMETERS: ClassVar[dict[str, Param]] = {
        "lr": _lr(1e-2),
        "lr_decay": Param(_NON_NEGATIVE, 0.0, "lr / (1 + (t - 1) * lr_decay)"),
        "weight_decay": Param(_NON_NEGATIVE, 0.0, "L2 penalty added to the gradient"),
        "initial_accumulator_value": Param(_NON_NEGATIVE, 0.0, "S_0"),
        "eps": Param(_NON_NEGATIVE, 1e-10, "added to the denominator"),
    }

    def state_keys(self) -> tuple[str, ...]:
        return ("sum",)

    def init_state(self, xp: Any, p: Any, g: Any) -> State:
        return {"sum": xp.full_like(p, self.hparams["initial_accumulator_value"])}

    def update(self, xp: Any, p: Any, g: Any, s: State, lr: float, t: int) -> None:
        r"""With ``g_t = grad + weight_decay * p`` and ``S_0 = initial_accumulator_value``::

        S_t = S_(t-1) + g_t**2
        p  <- p - lr / (1 + (t - 1) * lr_decay) * g_t / (sqrt(S_t) + eps)
        """
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


def _registered(name: Any, key: str) -> type[Optimizer]:
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"{key} must be one of {', '.join(sorted(OPTIMIZERS))}, got {name!r}")
    return OPTIMIZERS[name]


def make_optimizer(
    name: str, lr: float | None = None, schedule: Any = None, *, jit: Any = "auto", **hparams: Any
) -> Optimizer:
    """Build the optimizer registered as ``name`` (see ``OPTIMIZERS``).

    ``lr`` defaults to the optimizer's torch default; ``schedule`` is ``None`` (constant),
    a ``Schedule``, a name from ``SCHEDULES`` or a mapping ``{"name": ..., **kwargs}``;
    ``hparams`` are the torch hyper-parameters of that optimizer (``betas``, ``eps``, ...).
    ``jit`` (``"auto"``, ``"true"``, ``"false"`` or a bool) is kept as ``opt.jit`` for the
    NumPy fast path (:class:`mlpx.fast.optim.FlatOptimizer`), which decides with it
    whether its compiled kernels run (bit-identical results either way).
    """
    return _registered(name, "optimizer")(lr, schedule=schedule, jit=jit, **hparams)


def check_hyperparameters(
    name: str, given: Mapping[str, Any], *, prefix: str = ""
) -> dict[str, Any]:
    """Check a config's optimizer section without building the optimizer.

    ``given`` holds the hyper-parameters of optimizer ``name`` (``lr`` included, ``name``
    not) and optionally ``schedule``, ``clip_norm`` and ``jit``. Returns every
    hyper-parameter, defaults filled in, plus the extras that were given, checked:
    ``schedule`` (a :class:`Schedule` or ``None``, see :func:`check_schedule`),
    ``clip_norm`` (a positive float or ``None``) and ``jit`` (``auto``/``true``/``false``).
    Messages name each key with ``prefix`` (``optimizer.betas[0] must be ...``).
    """
    cls = _registered(name, f"{prefix}name")
    values = cls.check(given, prefix=prefix, extra=EXTRAS)
    if "schedule" in given:
        values["schedule"] = check_schedule(given["schedule"], key=f"{prefix}schedule")
    if "clip_norm" in given:
        clip = given["clip_norm"]
        values["clip_norm"] = None if clip is None else _POSITIVE.check(f"{prefix}clip_norm", clip)
    if "jit" in given:
        values["jit"] = jit_setting(given["jit"], key=f"{prefix}jit")
    return values


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
    max_norm = _POSITIVE.check("max_norm", max_norm)
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

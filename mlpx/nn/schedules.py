"""Learning-rate schedules: ``schedule(t, base_lr)`` is the learning rate of step ``t``.

Steps are counted from 0: ``t`` is the number of optimizer steps already taken, so
``schedule(0, base_lr)`` is the learning rate of the very first update. Every schedule is
stateless (a resumed run follows the same learning rates as an uninterrupted one) and
declares its parameters once, in ``PARAMS`` (:class:`mlpx.checks.Param`): the constructor,
:func:`make_schedule` and :func:`check_schedule` (the config's ``optimizer.schedule``) all
check them there.

==================  ==========================================  =========================
name                lr_t                                        torch
==================  ==========================================  =========================
``constant``        ``base_lr``                                 (no scheduler)
``step``            ``base_lr * gamma ** floor(t / step_size)``  ``StepLR``
``exponential``     ``base_lr * gamma ** t``                    ``ExponentialLR``
``cosine``          cosine from ``base_lr`` to ``eta_min``      ``CosineAnnealingLR``
``warmup_cosine``   linear warm-up, then cosine to ``min_lr``   ``LinearLR`` + cosine
==================  ==========================================  =========================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from mlpx.checks import Integer, Number, Param, check_params

__all__ = [
    "SCHEDULES",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "Schedule",
    "StepSchedule",
    "WarmupCosineSchedule",
    "check_schedule",
    "make_schedule",
]

_POSITIVE = Number(0, low_open=True)
_NON_NEGATIVE = Number(0)


class Schedule:
    """Base class: parameters declared in ``PARAMS`` (in positional order), checked by the
    constructor, read as attributes; immutable, compared and hashed by value.

    ``Schedule(*args, **kwargs)`` takes the parameters positionally or by name
    (``StepSchedule(2, 0.1) == StepSchedule(step_size=2, gamma=0.1)``).
    """

    name: ClassVar[str]
    PARAMS: ClassVar[dict[str, Param]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = list(self.PARAMS)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} arguments")
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key in given:
                raise TypeError(f"{type(self).__name__} got {key} twice")
            given[key] = value
        self.__dict__.update(type(self).check(given))

    @classmethod
    def check(cls, given: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
        """The checked parameters of ``given``, defaults filled in; one-line ``ValueError``
        naming ``prefix + key`` otherwise (see :func:`check_schedule`)."""
        accepted = list(cls.PARAMS)
        for key in given:
            if key not in cls.PARAMS:
                raise ValueError(
                    f"unknown schedule argument {prefix + key!r} for {cls.name!r}; "
                    f"accepted: {', '.join(accepted) or 'none'}"
                )
        missing = [k for k, p in cls.PARAMS.items() if p.required and k not in given]
        if missing:  # "optimizer.schedule.T_max is missing: schedule 'cosine' needs T_max"
            needs = f"schedule {cls.name!r} needs {', '.join(missing)}; got {sorted(given)}"
            raise ValueError(f"{prefix}{missing[0]} is missing: {needs}" if prefix else needs)
        values = check_params(
            f"argument of schedule {cls.name!r}", cls.PARAMS, given, prefix=prefix
        )
        cls.check_combination(values, prefix=prefix)
        return values

    @classmethod
    def check_combination(cls, values: dict[str, Any], *, prefix: str = "") -> None:
        """Rules between parameters (none by default); ``ValueError`` when one is broken."""

    def __call__(self, t: int, base_lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: build a new one")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.PARAMS)
        return f"{type(self).__name__}({args})"

    def _key(self) -> tuple[Any, ...]:
        return (type(self), *(getattr(self, k) for k in self.PARAMS))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class ConstantSchedule(Schedule):
    """``lr_t = base_lr``."""

    name: ClassVar[str] = "constant"

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr


class StepSchedule(Schedule):
    """``lr_t = base_lr * gamma ** floor(t / step_size)`` (torch ``StepLR``)."""

    name: ClassVar[str] = "step"
    PARAMS: ClassVar[dict[str, Param]] = {
        "step_size": Param(Integer(1), doc="decay every step_size steps", required=True),
        "gamma": Param(_POSITIVE, 0.1, "the factor of each decay"),
    }
    step_size: int
    gamma: float

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class ExponentialSchedule(Schedule):
    """``lr_t = base_lr * gamma ** t`` (torch ``ExponentialLR``)."""

    name: ClassVar[str] = "exponential"
    PARAMS: ClassVar[dict[str, Param]] = {
        "gamma": Param(_POSITIVE, doc="the factor of each step", required=True),
    }
    gamma: float

    def __call__(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma**t


class CosineSchedule(Schedule):
    """``lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    The closed form of torch ``CosineAnnealingLR``; like torch, it is periodic: past
    ``T_max`` the learning rate rises again (use ``warmup_cosine`` to stay at the floor).
    """

    name: ClassVar[str] = "cosine"
    PARAMS: ClassVar[dict[str, Param]] = {
        "T_max": Param(Integer(1), doc="steps of a half period", required=True),
        "eta_min": Param(_NON_NEGATIVE, 0.0, "the lowest learning rate"),
    }
    T_max: int
    eta_min: float

    def __call__(self, t: int, base_lr: float) -> float:
        cos = 1 + math.cos(math.pi * t / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * cos / 2


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

    name: ClassVar[str] = "warmup_cosine"
    PARAMS: ClassVar[dict[str, Param]] = {
        "warmup_steps": Param(Integer(0), doc="steps of linear warm-up", required=True),
        "total_steps": Param(Integer(1), doc="the step that reaches min_lr", required=True),
        "min_lr": Param(_NON_NEGATIVE, 0.0, "the learning rate after total_steps"),
    }
    warmup_steps: int
    total_steps: int
    min_lr: float

    @classmethod
    def check_combination(cls, values: dict[str, Any], *, prefix: str = "") -> None:
        w, total = values["warmup_steps"], values["total_steps"]
        if total < w:
            raise ValueError(
                f"{prefix}total_steps must be >= {prefix}warmup_steps ({w}), got {total!r}"
            )

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


def _registered(name: Any, key: str) -> type[Schedule]:
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"{key} must be one of {', '.join(sorted(SCHEDULES))}, got {name!r}")
    return SCHEDULES[name]


def make_schedule(name: str, **kwargs: Any) -> Schedule:
    """Build the schedule registered as ``name`` (see ``SCHEDULES``) from keyword arguments."""
    return _registered(name, "schedule")(**kwargs)


def check_schedule(
    spec: Any, *, key: str = "schedule", prefix: str | None = None
) -> Schedule | None:
    """The schedule ``spec`` describes, checked: ``None``, a :class:`Schedule`, a name from
    ``SCHEDULES`` or a mapping ``{"name": ..., **parameters}``.

    In a mapping a ``None`` value means "not set" (the config's shared schedule block keeps
    every schedule's keys, the unused ones null). Messages name the spec ``key``
    (``optimizer.schedule must be one of ...``) and its parameters ``prefix + parameter``,
    ``prefix`` defaulting to ``key + "."`` (``optimizer.schedule.step_size must be a
    positive integer, got 0``).
    """
    prefix = f"{key}." if prefix is None else prefix
    if spec is None or isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        cls, given = _registered(spec, key), {}
    elif isinstance(spec, Mapping):
        given = {k: v for k, v in spec.items() if v is not None}
        cls = _registered(given.pop("name", None), key)
    else:
        raise ValueError(
            f"{key} must be None, a schedule name, a mapping with a 'name' key or a Schedule, "
            f"got {spec!r}"
        )
    return cls(**cls.check(given, prefix=prefix))

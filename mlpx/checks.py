"""Parameter constraints, declared once and used wherever a value enters.

A :class:`Param` names a setting, its :class:`Constraint`, its default and one line of
documentation. The optimizers (:mod:`mlpx.nn.optim`), the schedules
(:mod:`mlpx.nn.schedules`) and the data loaders (:mod:`mlpx.data`) declare their parameters
this way; the config (:mod:`mlpx.app.config`) reads the same declarations to check a run's
settings (without building anything) and to document and describe them.

Every check raises ``ValueError`` with one line naming the key as the caller spells it and
what is accepted, e.g. ``lr must be a positive finite number, got -1``.

This module imports nothing but the standard library and NumPy, so the lecture's side may
use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "JIT_SETTINGS",
    "Choice",
    "Const",
    "Constraint",
    "Flag",
    "FolderPath",
    "Integer",
    "ListOf",
    "Number",
    "OneOf",
    "Optional",
    "Pair",
    "Param",
    "Switch",
    "Text",
    "check_params",
    "defaults_of",
    "is_number",
    "jit_setting",
]


def is_number(value: Any) -> bool:
    """A real number that is not a bool (Python or NumPy)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


class Constraint:
    """What a value must be: :meth:`check` returns the normalised value or raises."""

    def json_schema(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """The same rule as JSON Schema (draft 2020-12), for editors and validators."""
        raise NotImplementedError

    def check(self, key: str, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        """What is accepted, as it reads in an error message (``a positive finite number``)."""
        raise NotImplementedError

    def fail(self, key: str, value: Any) -> ValueError:
        return ValueError(f"{key} must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Number(Constraint):
    """A finite real number (returned as ``float``) with optional bounds.

    ``low``/``high`` are the bounds, ``low_open``/``high_open`` whether they are excluded.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        lo, hi = self.low, self.high
        if lo == 0 and hi is None:
            return "a positive finite number" if self.low_open else "a non-negative finite number"
        if lo is not None and hi is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"a number in {left}{lo:g}, {hi:g}{right}"
        if lo is not None:
            return f"a finite number {'>' if self.low_open else '>='} {lo:g}"
        if hi is not None:
            return f"a finite number {'<' if self.high_open else '<='} {hi:g}"
        return "a finite number"

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        if self.low is not None:
            out["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        if self.high is not None:
            out["exclusiveMaximum" if self.high_open else "maximum"] = self.high
        return out

    def check(self, key: str, value: Any) -> float:
        if not is_number(value) or not math.isfinite(value):
            raise self.fail(key, value)
        lo, hi = self.low, self.high
        if lo is not None and (value <= lo if self.low_open else value < lo):
            raise self.fail(key, value)
        if hi is not None and (value >= hi if self.high_open else value > hi):
            raise self.fail(key, value)
        return float(value)


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (not a bool) ``>= low`` (and ``<= high`` when given)."""

    low: int | None = None
    high: int | None = None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer in {self.low}..{self.high}"
        if self.low == 1:
            return "a positive integer"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer"

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.low is not None:
            out["minimum"] = self.low
        if self.high is not None:
            out["maximum"] = self.high
        return out

    def check(self, key: str, value: Any) -> int:
        if not isinstance(value, int | np.integer) or isinstance(value, bool | np.bool_):
            raise self.fail(key, value)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise self.fail(key, value)
        return int(value)


@dataclass(frozen=True)
class Flag(Constraint):
    """``True`` or ``False`` (Python or NumPy bool)."""

    def describe(self) -> str:
        return "a bool (true or false)"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def check(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool | np.bool_):
            raise self.fail(key, value)
        return bool(value)


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed list of strings."""

    values: tuple[str, ...]

    def describe(self) -> str:
        return f"one of {', '.join(self.values)}"

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.values)}

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise self.fail(key, value)
        return value


@dataclass(frozen=True)
class Optional(Constraint):
    """``None`` or a value accepted by ``inner``."""

    inner: Constraint

    def describe(self) -> str:
        return f"{self.inner.describe()} or null"

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [self.inner.json_schema(), {"type": "null"}]}

    def check(self, key: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.inner.check(key, value)
        except ValueError as exc:
            if str(exc).startswith(f"{key}["):  # an item's own message says more
                raise
            raise self.fail(key, value) from None


@dataclass(frozen=True)
class OneOf(Constraint):
    """A value accepted by any of ``options`` (the first that accepts it normalises it)."""

    options: tuple[Constraint, ...]

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.options)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [c.json_schema() for c in self.options]}

    def check(self, key: str, value: Any) -> Any:
        for option in self.options:
            try:
                return option.check(key, value)
            except ValueError:
                continue
        raise self.fail(key, value)


@dataclass(frozen=True)
class Pair(Constraint):
    """Two values, each accepted by ``item`` (``betas=(0.9, 0.999)``): a tuple."""

    item: Constraint

    def describe(self) -> str:
        return f"a pair of values, each {self.item.describe()}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.json_schema(), "minItems": 2, "maxItems": 2}

    def check(self, key: str, value: Any) -> tuple[Any, Any]:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | np.ndarray):
            raise ValueError(f"{key} must be a pair ({key}[0], {key}[1]), got {value!r}")
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{key} must be a pair ({key}[0], {key}[1]), got {value!r}")
        return (self.item.check(f"{key}[0]", items[0]), self.item.check(f"{key}[1]", items[1]))


@dataclass(frozen=True)
class Const(Constraint):
    """Exactly ``value`` (``OneOf((Const("active"), Integer(1)))``)."""

    value: Any

    def describe(self) -> str:
        return repr(self.value)

    def json_schema(self) -> dict[str, Any]:
        return {"const": self.value}

    def check(self, key: str, value: Any) -> Any:
        if (
            isinstance(value, bool | np.bool_) != isinstance(self.value, bool)
            or value != self.value
        ):
            raise self.fail(key, value)
        return self.value


@dataclass(frozen=True)
class Text(Constraint):
    """A string that is not blank; ``what`` is how it reads in a message."""

    what: str = "a non-empty string"

    def describe(self) -> str:
        return self.what

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "\\S"}

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value)
        return value


@dataclass(frozen=True)
class FolderPath(Constraint):
    """A folder path (``str`` or ``os.PathLike``), returned as a string with ``~`` expanded."""

    def describe(self) -> str:
        return "a folder path"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str | os.PathLike) or not os.fspath(value):
            raise self.fail(key, value)
        return os.path.expanduser(os.fspath(value))


@dataclass(frozen=True)
class Switch(Constraint):
    """``auto``, ``true`` or ``false`` (a bool or one of those strings, any case), returned
    as that lower-case string."""

    def describe(self) -> str:
        return f"one of {', '.join(JIT_SETTINGS)}"

    def json_schema(self) -> dict[str, Any]:
        # any case, as check accepts: auto, Auto, AUTO, ...
        spelled = "|".join("".join(f"[{c.lower()}{c.upper()}]" for c in v) for v in JIT_SETTINGS)
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": f"^({spelled})$"}]}

    def check(self, key: str, value: Any) -> str:
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        name = value.lower() if isinstance(value, str) else None
        if name not in JIT_SETTINGS:
            raise self.fail(key, value)
        return name


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list (or tuple) of values, each accepted by ``item`` (keys ``key[i]``): a list.

    ``plural`` is how the items read in a message (``positive integers``).
    """

    item: Constraint
    plural: str = ""

    def describe(self) -> str:
        return f"a list of {self.plural}" if self.plural else f"a list, each {self.item.describe()}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.json_schema()}

    def check(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise self.fail(key, value)
        return [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]


@dataclass(frozen=True)
class Param:
    """A declared parameter: its constraint, default and a one-line description."""

    constraint: Constraint
    default: Any = None
    doc: str = ""
    #: Whether the default is a real value (False: the parameter must be given).
    required: bool = field(default=False)

    def check(self, key: str, value: Any) -> Any:
        return self.constraint.check(key, value)

    def json_schema(self) -> dict[str, Any]:
        """The constraint's JSON Schema with this parameter's description and default."""
        out = dict(self.constraint.json_schema())
        accepted = self.constraint.describe()
        out["description"] = f"{self.doc} -- {accepted}" if self.doc else accepted
        if not self.required:
            default = self.default
            out["default"] = list(default) if isinstance(default, tuple) else default
        return out


#: The values of ``backend.jit`` / ``MLP(jit=...)`` / ``make_optimizer(jit=...)``.
JIT_SETTINGS = ("auto", "true", "false")


def jit_setting(value: Any, *, key: str = "jit") -> str:
    """The canonical ``auto`` / ``true`` / ``false`` of ``value`` (a bool or one of those
    strings, any case); ``ValueError`` naming ``key`` otherwise. Whether the compiled
    kernels are then used is decided by the fast path (:func:`mlpx.fast.kernels.resolve`)."""
    return Switch().check(key, value)


def defaults_of(declared: Mapping[str, Param]) -> dict[str, Any]:
    """``{name: default}`` of the parameters that are not required."""
    return {k: p.default for k, p in declared.items() if not p.required}


def check_params(
    what: str,
    declared: Mapping[str, Param],
    given: Mapping[str, Any],
    *,
    prefix: str = "",
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Check ``given`` against ``declared``; defaults fill what is missing.

    what : how the owner reads in a message (``hyper-parameter of 'adam'``).
    prefix : prepended to every key in messages (``optimizer.`` in the config).
    extra : further keys the caller accepts and handles itself (listed as accepted).
    Unknown keys raise ``ValueError('{prefix}{key} is not a {what}; accepted: ...')``.
    """
    for key in given:
        if key not in declared and key not in extra:
            accepted = ", ".join([*declared, *extra]) or "none"
            raise ValueError(f"{prefix}{key} is not a {what}; accepted: {accepted}")
    out: dict[str, Any] = {}
    for key, param in declared.items():
        if key in given:
            out[key] = param.check(prefix + key, given[key])
        elif param.required:
            raise ValueError(f"{prefix}{key} is missing: give {param.constraint.describe()}")
        else:
            out[key] = param.default
    return out

"""The search space of the ``optuna`` sweeper: Hydra's sweep syntax to Optuna distributions.

The syntax of hydra-optuna-sweeper 1.3, on Optuna >= 4's distributions:

- ``choice(a, b, c)``: categorical;
- ``range(start, stop, step)``: integers (or floats with a float step) on that grid;
  ``shuffle(range(...))``: categorical over the grid;
- ``interval(low, high)``: uniform float (ints: uniform integer);
  ``tag(log, interval(low, high))``: log-uniform;
- a plain value (``model.depth=3``): fixed, not searched (recorded as a user attribute).

Optuna is imported inside the functions (Hydra imports the plugin at every start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = [
    "distribution_of",
    "grid_choices",
    "missing_keys",
    "space_from_overrides",
    "suggest",
    "to_override",
]


def distribution_of(override: Any) -> Any:
    """An Optuna distribution for a parsed sweep override, or its plain value (a string).

    ``override`` is a :class:`hydra.core.override_parser.types.Override`.
    """
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for x in choices:
            if not isinstance(x, str | int | float | bool | type(None)):
                raise ValueError(
                    f"{override.get_key_element()}: a choice takes strings, numbers, booleans "
                    f"or null, not {x!r}"
                )
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(v, float) for v in (start, stop, step)):
            # Hydra's range excludes stop; Optuna's high is included
            n = int((stop - start) // step)
            high = start + (n - 1 if start + n * step >= stop else n) * step
            return FloatDistribution(float(start), float(high), step=float(step))
        last = int(start) + ((int(stop) - 1 - int(start)) // int(step)) * int(step)
        return IntDistribution(int(start), last, step=int(step))
    if override.is_interval_sweep():
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(int(value.start), int(value.end), log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{override.input_line}: not a sweep the optuna sweeper knows")


def space_from_overrides(arguments: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """``(distributions, fixed)`` of ``key=value`` strings: the searched keys and the fixed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import BaseDistribution

    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        value = distribution_of(override)
        if isinstance(value, BaseDistribution):
            space[key] = value
            fixed.pop(key, None)
        else:
            fixed[key] = value
            space.pop(key, None)
    return space, fixed


def suggest(trial: Any, name: str, distribution: Any) -> Any:
    """Ask ``trial`` for ``name`` from ``distribution`` through the public ``suggest_*``."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        step = None if distribution.log else distribution.step
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=step or 1, log=distribution.log
        )
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def grid_choices(name: str, distribution: Any) -> list[Any]:
    """The values a GridSampler tries for ``distribution`` (discrete distributions only)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    step = getattr(distribution, "step", None)
    if step is None or getattr(distribution, "log", False):
        raise ValueError(
            f"hydra.sweeper.params.{name}: the grid sampler needs choice(...) or range(...), "
            "not an interval"
        )
    n = round((distribution.high - distribution.low) / step) + 1
    return [distribution.low + i * step for i in range(n)]


def to_override(name: str, value: Any) -> str:
    """``name=value`` as a Hydra override; strings that Hydra would misread are quoted."""
    if isinstance(value, str):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            (parsed,) = OverridesParser.create().parse_overrides([f"{name}={value}"])
            if parsed.value() == value:
                return f"{name}={value}"
        except Exception:
            pass
        return f"{name}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value is None:
        return f"{name}=null"
    if isinstance(value, bool):
        return f"{name}={str(value).lower()}"
    return f"{name}={value}"


def missing_keys(config: DictConfig | Mapping[str, Any], keys: list[str]) -> list[str]:
    """The search-space keys that name no key of the job config (``+key`` ones may add one).

    A config group (``optimizer``, ``dataset``) counts as a key.
    """
    cfg = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    absent = object()
    return [
        key
        for key in keys
        if not key.startswith(("+", "~", "hydra."))
        and OmegaConf.select(cfg, key, default=absent, throw_on_resolution_failure=False) is absent
    ]

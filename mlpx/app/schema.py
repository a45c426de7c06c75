"""JSON Schemas of the config files, made from the config's one declaration of every key.

Each key's type, range, accepted names, default and description come from its
:class:`mlpx.checks.Param` (:mod:`mlpx.app.config`, :mod:`mlpx.data`, :mod:`mlpx.nn.optim`,
:mod:`mlpx.nn.schedules`) through :meth:`mlpx.checks.Constraint.json_schema`: no second
copy. One schema per config group (``conf/schemas/<group>.json``) and one for the whole
config (``config.json``: ``conf/config.yaml`` and the ``# @package _global_`` overlays of
``experiment/`` and ``hparams_search/``, which set any part of it). Written by
``python tools/make_schemas.py``; editors read them through the first line of each file,
``# yaml-language-server: $schema=...``.

Wherever a value is expected a Hydra interpolation (``${trainer.seed}``) is accepted too;
the schema cannot tell what it resolves to, the run's own check does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpx.app.config import (
    ANALYSIS,
    BACKEND,
    CLIP_NORM,
    EARLY_STOPPING,
    LOGGER,
    MODE,
    MODEL,
    OPTIMIZER_NAME,
    SWEEP,
    TRAINER,
)
from mlpx.checks import Choice, Optional, Param
from mlpx.data import DATASET_NAME, DATASETS, SPLIT_PARAMS
from mlpx.nn.optim import OPTIMIZERS
from mlpx.nn.schedules import SCHEDULES

__all__ = ["GROUPS", "INTERPOLATION", "SCHEMA_DIALECT", "schema_for", "schemas"]

SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

#: A Hydra/OmegaConf interpolation, accepted wherever a value is expected.
INTERPOLATION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^\$\{.*\}$",
    "description": "an interpolation, e.g. ${trainer.seed}",
}

#: Hydra's defaults list, which any config file may have.
DEFAULTS_LIST: dict[str, Any] = {
    "type": "array",
    "description": "Hydra's defaults list: the options this file builds on (e.g. - _self_)",
}

#: The config groups with a schema of their own (``conf/<group>/*.yaml``).
GROUPS = ("model", "optimizer", "dataset", "backend", "trainer", "logger", "analysis", "sweep")


def _value(param: Param) -> dict[str, Any]:
    """One key: its rule or an interpolation, with its description and default."""
    rule = param.json_schema()
    out = {"description": rule.pop("description")}
    if "default" in rule:
        out["default"] = rule.pop("default")
    out["anyOf"] = [rule, INTERPOLATION]
    return out


def _object(title: str, properties: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
        **extra,
    }


def _group(title: str, declared: Mapping[str, Any]) -> dict[str, Any]:
    """Keys declared as Params, or sub-groups (dicts of Params) as nested objects."""
    props: dict[str, Any] = {}
    for key, param in declared.items():
        if isinstance(param, Param):
            props[key] = _value(param)
        else:
            sub = _group(f"{title}.{key}", param)
            sub["description"] = f"{key}: a sub-group of {title}"
            props[key] = sub
    return _object(title, {"defaults": DEFAULTS_LIST, **props})


def _by_name(
    title: str,
    name: Param,
    shared: Mapping[str, Any],
    own: Mapping[str, Mapping[str, Param]],
) -> dict[str, Any]:
    """A group whose keys depend on its ``name`` (optimizer, dataset): every key any option
    has is a property (so editors complete them), and one ``if name: X then only X's keys``
    rule per option."""
    props: dict[str, Any] = {"defaults": DEFAULTS_LIST, "name": _value(name), **shared}
    for declared in own.values():
        for key, param in declared.items():
            props.setdefault(key, _value(param))
    rules = []
    for option, declared in sorted(own.items()):
        keys = ["defaults", "name", *shared, *declared]
        rules.append(
            {
                "if": {"properties": {"name": {"const": option}}, "required": ["name"]},
                "then": {
                    "properties": {k: _value(p) for k, p in declared.items()},
                    "propertyNames": {"enum": keys},
                },
            }
        )
    return _object(title, props, allOf=rules)


def _schedule() -> dict[str, Any]:
    """``optimizer.schedule``: null, a name, or the shared block (unused keys null)."""
    props: dict[str, Any] = {
        "name": _value(
            Param(
                Optional(Choice(tuple(sorted(SCHEDULES)))), "constant", "the learning-rate schedule"
            )
        )
    }
    for cls in SCHEDULES.values():
        for key, param in cls.PARAMS.items():
            doc = f"{cls.name}: {param.doc}"
            nullable = Param(Optional(param.constraint), None, doc)
            props.setdefault(key, _value(nullable))
    block = _object("optimizer.schedule", props)
    return {
        "description": "the learning-rate schedule, counted in optimizer steps; unused keys null",
        "anyOf": [{"type": "null"}, {"enum": sorted(SCHEDULES)}, block, INTERPOLATION],
    }


def _optimizer() -> dict[str, Any]:
    shared = {"schedule": _schedule(), "clip_norm": _value(CLIP_NORM)}
    own = {name: cls.HYPERPARAMETERS for name, cls in OPTIMIZERS.items()}
    return _by_name("optimizer", OPTIMIZER_NAME, shared, own)


def _dataset() -> dict[str, Any]:
    shared = {k: _value(p) for k, p in SPLIT_PARAMS.items()}
    return _by_name("dataset", DATASET_NAME, shared, DATASETS)


def _trainer() -> dict[str, Any]:
    out = _group("trainer", TRAINER)
    es = _group("trainer.early_stopping", EARLY_STOPPING)
    es["description"] = "early_stopping: stop when the monitored metric stops improving"
    out["properties"]["early_stopping"] = es
    return out


def schema_for(group: str) -> dict[str, Any]:
    """The schema of one config group's files (without ``$schema``)."""
    if group == "optimizer":
        return _optimizer()
    if group == "dataset":
        return _dataset()
    if group == "trainer":
        return _trainer()
    declared = {
        "model": MODEL,
        "backend": BACKEND,
        "logger": LOGGER,
        "analysis": ANALYSIS,
        "sweep": SWEEP,
    }[group]
    return _group(group, declared)


def _whole() -> dict[str, Any]:
    """The whole config, every part optional: config.yaml and the _global_ overlays."""
    props: dict[str, Any] = {
        "defaults": DEFAULTS_LIST,
        "mode": _value(MODE),
        "hydra": {"type": "object", "description": "Hydra's own settings (hydra.*)"},
        "experiment": {"type": ["object", "null"], "description": "set by experiment=<name>"},
    }
    definitions = {}
    for group in GROUPS:
        definitions[group] = schema_for(group)
        props[group] = {"$ref": f"#/definitions/{group}"}
    return _object("mlpx config", props, definitions=definitions)


def schemas() -> dict[str, dict[str, Any]]:
    """``{file name: schema}`` of every schema under ``conf/schemas/``."""
    out = {f"{g}.json": schema_for(g) for g in GROUPS}
    out["config.json"] = _whole()
    return {name: {"$schema": SCHEMA_DIALECT, **s} for name, s in out.items()}

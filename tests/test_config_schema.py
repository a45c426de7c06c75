"""The JSON Schemas of conf/: generated from the declarations, current, and they catch mistakes.

Every shipped config file names its schema on its first line and validates against it
(with ``jsonschema``, as an editor's YAML language server would); wrong types, values out
of range, unknown names and unknown keys are rejected; interpolations are accepted where a
value is expected; every key carries a comment from its declaration.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema  # the test extra: the validator an editor's language server stands for
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def _make_schemas() -> Any:
    spec = importlib.util.spec_from_file_location(
        "mlpx_make_schemas", ROOT / "tools" / "make_schemas.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_schemas = _make_schemas()
FILES = make_schemas.config_files()
IDS = [str(p.relative_to(CONF)) for p in FILES]


def validator(name: str) -> Any:
    schema = json.loads((CONF / "schemas" / name).read_text())
    return jsonschema.Draft7Validator(schema)


def errors(name: str, document: Any) -> list[str]:
    return [e.message for e in validator(name).iter_errors(document)]


def test_the_schemas_are_generated_from_the_declarations() -> None:
    texts = make_schemas.schema_texts()
    on_disk = {p.name for p in (CONF / "schemas").glob("*.json")}
    assert on_disk == set(texts), "run: python tools/make_schemas.py"
    for name, text in texts.items():
        assert (CONF / "schemas" / name).read_text() == text, f"{name}: run tools/make_schemas.py"
        jsonschema.Draft7Validator.check_schema(json.loads(text))


def test_every_config_file_but_hydras_own_has_a_schema() -> None:
    every = {p for p in CONF.rglob("*.yaml") if "hydra" not in p.relative_to(CONF).parts}
    assert every == set(FILES)
    assert len(FILES) > 40


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_each_file_names_its_schema_comments_its_keys_and_validates(path: Path) -> None:
    text = path.read_text()
    name = make_schemas.schema_name(path)
    lines = [x for x in text.splitlines() if not x.startswith("# @package")]
    assert lines[0].startswith("# ") and "yaml-language-server" not in lines[0]  # what it is
    assert lines[1] == f"# yaml-language-server: $schema={name}"
    assert "@package" not in text or text.startswith("# @package _global_\n")
    assert (path.parent / name).is_file()
    expected = make_schemas.expected(path, make_schemas.schema_module().schemas())
    assert text == expected, f"{path}: a key without a comment; run tools/make_schemas.py"
    document = yaml.safe_load(text) or {}
    assert errors(Path(name).name, document) == []


@pytest.mark.parametrize(
    ("schema", "document", "message"),
    [
        ("trainer.json", {"epochs": "ten"}, "'ten' is not valid under any of the given schemas"),
        ("trainer.json", {"epochs": 0}, "0 is not valid under any of the given schemas"),
        ("trainer.json", {"epoch": 5}, "Additional properties are not allowed ('epoch' was"),
        ("trainer.json", {"early_stopping": {"patiense": 5}}, "('patiense' was unexpected)"),
        ("model.json", {"activation": "relux"}, "'relux' is not valid under any"),
        ("model.json", {"widths": [128, -3]}, "[128, -3] is not valid under any"),
        ("optimizer.json", {"name": "adam", "betas": [0.9, 1.0]}, "is not valid under any"),
        ("optimizer.json", {"name": "adam", "momentum": 0.9}, "'momentum' is not one of"),
        ("optimizer.json", {"name": "adamm"}, "'adamm' is not valid under any"),
        ("dataset.json", {"name": "moons", "noise": -0.1}, "-0.1 is not valid under any"),
        ("dataset.json", {"name": "digits", "noise": 0.1}, "'noise' is not one of"),
        ("dataset.json", {"name": "moons", "val_size": 1.0}, "1.0 is not valid under any"),
        ("analysis.json", {"gradcheck": {"eps": 0.5}}, "0.5 is not valid under any"),
        ("backend.json", {"jit": "on"}, "'on' is not valid under any"),
        ("config.json", {"trainer": {"epochs": -1}}, "-1 is not valid under any"),
        ("config.json", {"trainr": {"epochs": 1}}, "('trainr' was unexpected)"),
        ("config.json", {"mode": "predict"}, "'predict' is not valid under any"),
    ],
)
def test_mistakes_are_flagged(schema: str, document: dict, message: str) -> None:
    found = errors(schema, document)
    assert any(message in m for m in found), found


@pytest.mark.parametrize(
    ("schema", "document"),
    [
        ("trainer.json", {"epochs": "${oc.env:EPOCHS}", "seed": "${dataset.seed}"}),
        ("optimizer.json", {"name": "adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-8}),
        ("optimizer.json", {"name": "sgd", "schedule": {"name": "step", "step_size": 500}}),
        ("optimizer.json", {"name": "sgd", "schedule": "cosine"}),
        ("backend.json", {"jit": "AUTO"}),  # any case, as the run's check takes it
        ("backend.json", {"jit": True}),
        ("dataset.json", {"name": "openml", "openml_name": "mnist_784", "version": 1}),
        ("config.json", {"defaults": [{"override /model": "deep"}], "trainer": {"epochs": 3}}),
    ],
)
def test_what_the_run_accepts_validates(schema: str, document: dict) -> None:
    assert errors(schema, document) == []


def test_the_schema_tells_what_each_key_is() -> None:
    """Hover text and completion come from the declaration: doc, accepted values, default."""
    trainer = json.loads((CONF / "schemas" / "trainer.json").read_text())
    epochs = trainer["properties"]["epochs"]
    assert epochs["description"] == "passes over the training split -- a positive integer"
    assert epochs["default"] == 30
    model = json.loads((CONF / "schemas" / "model.json").read_text())
    activation = model["properties"]["activation"]["anyOf"][0]["anyOf"][0]
    assert "relu" in activation["enum"] and "tanh" in activation["enum"]


def test_key_comments_are_added_only_where_missing() -> None:
    schema = make_schemas.schema_module().schemas()["trainer.json"]
    text = (
        "# header\nepochs: 3\n# mine\nseed: 1\nshuffle: true  # also mine\n"
        "early_stopping:\n  patience: 2\n"
    )
    out = make_schemas.with_key_comments(text, schema).splitlines()
    assert out[1] == "epochs: 3  # passes over the training split -- a positive integer"
    assert out[3] == "seed: 1" and out[4] == "shuffle: true  # also mine"
    assert out[6].startswith("  patience: 2  # evaluations without gain")
    with pytest.raises(ValueError, match=r"^epoch is not a declared key$"):
        make_schemas.with_key_comments("epoch: 3\n", schema)


SAMPLES = [
    -1, 0, 1, 2, 3, 7, 10, 1000, 2**33, 0.005, 0.5, 0.999, 1.5, -0.5, 1234.5,
    True, False, None, "", "  ", "x", "auto", "AUTO", "Off", "relu", "adam", "active",
    "val/loss", "float32", "glorot_uniform", "numpy", "cpu", "cosine",
    [], [1, 2], [128, 64], [0, 1], [0.9, 0.999], [0.9, 1.0], ["relu", "tanh"], [1, 2, 3],
    {"a": 1},
]  # fmt: skip


def _accepts(check: Any, value: Any) -> bool:
    try:
        check("key", value)
    except ValueError:
        return False
    return True


def test_each_declared_rule_and_its_schema_accept_the_same_values() -> None:
    """The schema is the declaration: on a spread of values, a key's check and its JSON
    Schema agree (an integral float such as 1.0 aside, which JSON Schema counts as an
    integer; no sample here is one)."""
    from mlpx.app.config import declared_keys

    for _, key, param in declared_keys():
        schema = jsonschema.Draft7Validator(param.constraint.json_schema())
        for value in SAMPLES:
            by_check = _accepts(param.check, value)
            assert schema.is_valid(value) == by_check, (key, value, by_check)

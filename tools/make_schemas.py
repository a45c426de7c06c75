"""Regenerate conf/schemas/*.json, the schema line and the key comments of conf/**/*.yaml.

From the declarations the config is checked with (mlpx.app.schema, which reads
mlpx.app.config, mlpx.data, mlpx.nn.optim and mlpx.nn.schedules):

- conf/schemas/<group>.json for each config group, conf/schemas/config.json for the whole
  config (conf/config.yaml and the `# @package _global_` files of experiment/ and
  hparams_search/);
- a line in the header comment of each conf/**/*.yaml (Hydra's own conf/hydra/ aside),
  after Hydra's `# @package` line (which must stay on top) and the file's description:
  `# yaml-language-server: $schema=<its schema>`, which VS Code's YAML extension (Red Hat)
  and other editors with the YAML language server read;
- a comment on each key that has none (inline: what it means and what it accepts), from
  the key's declaration; comments already there are kept.

Run after adding or changing a key or a config file: python tools/make_schemas.py
(tests/test_config_schema.py fails when a schema, a schema line or a comment is missing).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
SCHEMAS = CONF / "schemas"
SCHEMA_LINE = "# yaml-language-server: $schema="
#: Groups whose files are `# @package _global_` overlays of the whole config.
GLOBAL_GROUPS = ("experiment", "hparams_search")
KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w]*):(?P<rest>.*)$")


def schema_module() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from mlpx.app import schema

    return schema


def schema_name(path: Path) -> str | None:
    """The schema of a config file, relative to it; None for Hydra's own files."""
    rel = path.relative_to(CONF)
    if rel.parts == ("config.yaml",):
        return "schemas/config.json"
    group = rel.parts[0]
    if group in GLOBAL_GROUPS:
        return "../schemas/config.json"
    if group in schema_module().GROUPS and len(rel.parts) == 2:
        return f"../schemas/{group}.json"
    return None


def config_files() -> list[Path]:
    """Every shipped config file that has a schema."""
    return [p for p in sorted(CONF.rglob("*.yaml")) if schema_name(p) is not None]


def with_schema_line(text: str, name: str) -> str:
    """``text`` with ``# yaml-language-server: $schema=<name>`` after Hydra's header
    (``# @package _global_``: Hydra reads it only from the top of the file) and the file's
    one-line description (what ``mlpx --help`` shows)."""
    lines = [x for x in text.splitlines() if not x.startswith(SCHEMA_LINE)]
    top = 0
    while top < len(lines) and lines[top].startswith("# @"):
        top += 1
    if top < len(lines) and lines[top].startswith("#"):
        top += 1
    return "\n".join([*lines[:top], SCHEMA_LINE + name, *lines[top:]]) + "\n"


def _description(schema: dict[str, Any], root: dict[str, Any], path: list[str]) -> str | None:
    node = schema
    for key in path:
        if "$ref" in node:
            node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if "properties" not in node:  # e.g. optimizer.schedule: the object among its anyOf
            node = next((s for s in node.get("anyOf", ()) if "properties" in s), node)
        node = node.get("properties", {}).get(key)
        if node is None:
            return None
    return node.get("description")


def with_key_comments(text: str, schema: dict[str, Any]) -> str:
    """``text`` with a comment after each key that has none: its declared description.

    A key counts as commented with a comment on its line or on the line just above it (not
    the file's header comment).
    Hydra's ``defaults`` list and ``hydra:`` settings are left alone."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []
    skip_below: int | None = None
    previous = ""  # the last line that is not blank or part of the file's header comment
    header = True
    for line in text.splitlines():
        header = header and (line.startswith("#") or not line.strip())
        m = KEY.match(line)
        if m is None:
            out.append(line)
            if line.strip() and not header:
                previous = line
            continue
        indent = len(m["indent"])
        if skip_below is not None and indent > skip_below:
            out.append(line)
            previous = line
            continue
        skip_below = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [m["key"]]
        value = m["rest"].split(" #", 1)[0].strip()
        if m["key"] in ("defaults", "hydra") and not stack:
            skip_below = indent
        elif not value:  # a mapping: its keys get the comments
            stack.append((indent, m["key"]))
        elif "#" not in m["rest"] and not previous.lstrip().startswith("#"):
            doc = _description(schema, schema, path)
            if doc is None:
                raise ValueError(f"{'.'.join(path)} is not a declared key")
            line = f"{line.rstrip()}  # {doc}"
        out.append(line)
        previous = line
    return "\n".join(out) + "\n"


def expected(path: Path, schemas: dict[str, dict[str, Any]]) -> str:
    """What a config file should read: schema line first, every key commented."""
    name = schema_name(path)
    assert name is not None
    text = with_schema_line(path.read_text(), name)
    return with_key_comments(text, schemas[Path(name).name])


def schema_texts() -> dict[str, str]:
    """``{file name: JSON text}`` of conf/schemas/."""
    return {
        name: json.dumps(s, indent=2, ensure_ascii=False) + "\n"
        for name, s in schema_module().schemas().items()
    }


def main() -> None:
    SCHEMAS.mkdir(exist_ok=True)
    for name, text in schema_texts().items():
        (SCHEMAS / name).write_text(text)
    schemas = schema_module().schemas()
    for path in config_files():
        path.write_text(expected(path, schemas))


if __name__ == "__main__":
    main()

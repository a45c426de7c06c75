"""Regenerate conf/hydra/help/mlpx.yaml (the text of `mlpx --help`) and docs/config.md.

`mlpx --help` lists every option of every group with the first comment line of its file,
found at run time in the config search path (`--config-dir` and `hydra.searchpath` too:
the `${mlpx_groups:}` resolver of mlpx.app.cli);
docs/config.md every key with what it accepts, its default and what it does, from the
declarations the config checks with (mlpx.app.config.declared_keys). Run after adding or
renaming a config option or key: python tools/make_help.py
(tests/test_config.py fails when the help, the reference and the code disagree).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
REFERENCE = ROOT / "docs" / "config.md"

HEADER = """\
# The text of `mlpx --help`, made by tools/make_help.py. ${mlpx_groups:} lists every option of
# every group in this run's config search path (--config-dir included) with the first comment
# line of its file, when --help runs (mlpx.app.cli).
app_name: mlpx
header: |-
  mlpx: train the lecture's multilayer perceptron from YAML configs, tracked in MLflow.
footer: |-
  Examples:
    mlpx                                        train the default: digits, [128, 64], relu, Adam
    mlpx optimizer=sgd optimizer.lr=0.1         change a group and a value
    mlpx model.widths=[256,128,64] model.activation=tanh
    mlpx model.widths=null model.depth=3 model.width=64
    mlpx backend=torch backend.device=cuda backend.dtype=float32
    mlpx experiment=moons_small logger=none     an overlay from conf/experiment, no tracking
    mlpx -m optimizer=sgd,adam trainer.seed=0,1,2   a sweep: one MLflow parent run, a child per job
    mlpx --cfg job                              print the composed config and exit
  Results: run `mlflow ui` in the folder where mlpx ran (MLflow's default store, mlflow.db),
  or set logger.tracking_uri / MLFLOW_TRACKING_URI. Hydra's own help: mlpx --hydra-help
template: |-
  ${hydra.help.header}

  Usage: mlpx [GROUP=OPTION] [KEY=VALUE ...] [-m] [--cfg job] [--info] [--hydra-help]

  Config groups (GROUP=OPTION; the defaults are in conf/config.yaml):
"""

FOOTER = """
  Every key of the composed config can be overridden, e.g. trainer.epochs=50.
  The composed config (defaults plus your overrides):

  $CONFIG

  ${hydra.help.footer}
"""


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def config_reference() -> str:
    """docs/config.md: a table of keys per section (group, or group option)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from mlpx.app.config import declared_keys

    out = [
        "# Config keys",
        "",
        "Every key `mlpx` accepts, what it accepts, its default (what a key left out of the",
        "config gets; the files in `conf/` say the same) and what it does. Generated from the",
        "declarations the config is checked with (`mlpx.app.config.declared_keys`) by",
        "`python tools/make_help.py`; do not edit by hand. The same declarations give the JSON",
        "Schemas in `conf/schemas/` and the comment on each key of `conf/`",
        "(`python tools/make_schemas.py`).",
    ]
    section = None
    for where, key, param in declared_keys():
        if where != section:
            section = where
            out += ["", f"## `{where}`", "", "| key | accepted | default | what |"]
            out.append("|---|---|---|---|")
        default = "(required)" if param.required else f"`{_value(param.default)}`"
        accepted = param.constraint.describe().replace("|", "\\|")
        out.append(f"| `{key}` | {accepted} | {default} | {param.doc} |")
    return "\n".join(out) + "\n"


def main() -> None:
    text = HEADER + "  ${mlpx_groups:}\n" + FOOTER
    (CONF / "hydra" / "help" / "mlpx.yaml").write_text(text)
    REFERENCE.write_text(config_reference())


if __name__ == "__main__":
    main()

"""What mlpx says about its config: Hydra's errors in mlpx's words, and the groups of --help.

:func:`composition_error` turns an error raised while Hydra composes the config (an
unknown key or option, a missing plugin, an overlay without ``# @package _global_``, a
YAML syntax error) into one line that names the key or file, lists what is accepted
(never the private ``_*.yaml`` files) and suggests the nearest name.
:func:`config_source` finds the file a bad value came from; :func:`help_groups` lists
every option of every group in this run's config search path (``--config-dir``,
``hydra.searchpath`` included), for ``mlpx --help``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import MissingConfigException, OverrideParseException

from mlpx.app.config import TOP_KEYS, declared_keys

__all__ = [
    "PLUGINS",
    "composition_error",
    "config_source",
    "help_groups",
    "private_option",
    "search_folders",
    "unknown_key",
    "with_suggestion",
    "yaml_error",
]

#: (Hydra group, option) -> the pip package of the Hydra plugin that provides it.
PLUGINS = {
    ("hydra/launcher", "joblib"): "hydra-joblib-launcher",
    ("hydra/launcher", "submitit_local"): "hydra-submitit-launcher",
    ("hydra/launcher", "submitit_slurm"): "hydra-submitit-launcher",
    ("hydra/sweeper", "optuna"): "mlpx_optuna_sweeper (shipped with mlpx; install mlpx again)",
}
#: The groups whose options live in ``conf/`` (what ``--help`` lists): the config's groups
#: (``mode`` is a plain key) and the sweep searches.
HELP_GROUPS = (*(key for key in TOP_KEYS if key != "mode"), "hparams_search")


def _nearest(name: str, names: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(name: str, names: Iterable[str]) -> str:
    near = _nearest(name, names)
    return f"; did you mean {near}?" if near else ""


def _public(options: Iterable[str]) -> list[str]:
    return [o for o in options if not o.rsplit("/", 1)[-1].startswith("_")]


def unknown_key(key: str) -> str:
    """An override of a key the composed config does not have (``trainer.epoch=5``)."""
    declared = declared_keys()
    sections: dict[str, list[str]] = {}
    for section, name, _ in declared:
        sections.setdefault(name, []).append(section)
    if key in sections:  # a key of another option: optimizer.momentum with adam
        owners = [s.split(" ", 1)[1] for s in sections[key] if " " in s]
        group = key.split(".", 1)[0]
        if owners:
            return (
                f"{key} is not a key of the chosen {group}: it belongs to "
                f"{', '.join(f'{group}={o}' for o in owners)}"
            )
        return (  # declared, but not in the chosen option (logger.log_figures with logger=none)
            f"{key} is not a key of the chosen {group} option: drop it, or choose a {group} "
            "option that has it"
        )
    if "." not in key:  # a group name: optimzer=adam
        return f"{key} is not a config group or key; accepted: {', '.join(TOP_KEYS)}" + (
            _did_you_mean(key, TOP_KEYS)
        )
    prefix, leaf = key.rsplit(".", 1)
    below = [k[len(prefix) + 1 :] for k in sections if k.startswith(prefix + ".")]
    siblings = sorted({k.split(".")[0] for k in below})
    if siblings:  # a known group: the nearest of its keys, else all of them
        near = _nearest(leaf, siblings)
        if near is None:
            return f"{key} is not a config key; the keys of {prefix}: {', '.join(siblings)}"
        return f"{key} is not a config key; did you mean {prefix}.{near}?"
    near = _nearest(key, sections)
    if near is None:
        return f"{key} is not a config key (every key: docs/config.md, or mlpx --cfg job)"
    return f"{key} is not a config key; did you mean {near}?"


def _missing_option(exc: MissingConfigException) -> str:
    group, _, option = (exc.missing_cfg_file or "").rpartition("/")
    package = PLUGINS.get((group, option))
    if package is not None:
        return (
            f"{group}={option} needs the Hydra plugin {package}, which is not installed: "
            "pip install 'mlpx[sweep]'"
        )
    options = _public(exc.options or [])
    where = re.match(r"In '([^']+)'", str(exc))
    from_file = where and where[1] not in ("config", "hydra/config")
    inside = f" (in {where[1]}.yaml)" if from_file else ""
    return (
        f"{group}={option}: {group} has no option {option!r}{inside}; its options: "
        f"{', '.join(options)}{_did_you_mean(option, options)}"
    )


def yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML syntax error: the file, line and column, and what the parser found."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"a config file is not valid YAML: {problem}"
    return (
        f"{mark.name}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem} "
        "(indent with spaces, close every [ and {, quote values with ': ' or ' #')"
    )


def composition_error(exc: Exception) -> str:
    """What went wrong composing the config, as one line (classified by exception type,
    then by Hydra's wording where the type does not tell)."""
    if isinstance(exc, yaml.YAMLError):
        return yaml_error(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        if (group, option) in PLUGINS or exc.options:
            return _missing_option(exc)
    if isinstance(exc, OverrideParseException):
        return f"cannot parse {exc.override!r}: {exc.message.splitlines()[0]}"
    text = str(exc)
    package = re.search(r"In '([^']+)': Could not override '\w+@(\w+)\.", text)
    if package:  # an overlay without '# @package _global_': its '/group' lands under it
        return (
            f"{package[1]}.yaml must start with the line '# @package _global_' (an "
            f"{package[2]} overlay sets keys of the whole config)"
        )
    key = re.search(r"Could not (?:override|delete from config\.) '([^']+)'", text)
    if key and not key[1].startswith("hydra."):
        return unknown_key(key[1])
    return text  # Hydra's own words


def with_suggestion(message: str) -> str:
    """``<group>.<key> is not a ...; accepted: a, b, c`` (an unknown key a file or a ``+``
    override added) with ``; did you mean <group>.<nearest>?`` when one is close."""
    m = re.match(r"(?:(.+)\.)?(\w+) is not a [^;]+; accepted: ([\w, ]+)$", message)
    if m is None:
        return message
    near = _nearest(m[2], m[3].split(", "))
    return f"{message}; did you mean {m[1] + '.' if m[1] else ''}{near}?" if near else message


def private_option(arg: str, conf: Path) -> str | None:
    """``optimizer=_schedule``: a private file shared by a group's options, not an option."""
    m = re.fullmatch(r"[+~]*([\w/]+)=(_\w+)", arg)
    if m is None or not (conf / m[1] / f"{m[2]}.yaml").is_file():
        return None
    options = sorted(p.stem for p in (conf / m[1]).glob("[!_]*.yaml"))
    return (
        f"{arg}: {m[2]}.yaml is shared by the options of {m[1]}, not an option itself; "
        f"its options: {', '.join(options)}"
    )


def _key_set(document: Any, path: Sequence[str]) -> bool:
    for part in path:
        if not isinstance(document, Mapping) or part not in document:
            return False
        document = document[part]
    return True


def config_source(
    key: str, choices: Mapping[str, Any], sources: Sequence[str], overrides: Sequence[str]
) -> str | None:
    """The file that set ``key`` last (``trainer.epochs``; ``[i]`` ignored): the primary
    config or a chosen option's file (``choices``: group -> option, in defaults-list order)
    in the search path (``sources``: folders), or None when the command line set it."""
    key = re.sub(r"\[\d+\]", "", key)
    if any(re.match(rf"[+~]*{re.escape(key)}=", o) for o in overrides):
        return None
    path = key.split(".")
    found = None
    candidates = [  # the primary config last: its _self_ comes last in its defaults
        (g, str(o)) for g, o in choices.items() if o is not None and not g.startswith("hydra")
    ] + [("", "config")]
    for group, option in candidates:
        for folder in sources:
            file = Path(folder) / group / f"{option}.yaml"
            if not file.is_file():
                continue
            text = file.read_text()
            try:
                document = yaml.safe_load(text) or {}
            except yaml.YAMLError:
                break
            if text.lstrip().startswith("# @package _global_") or not group:
                where = path  # the file sets keys of the whole config
            elif path[0] == group and len(path) > 1:
                where = path[1:]  # the file is the group's package
            else:
                break
            if _key_set(document, where):
                found = str(file)
            break
    return found


def search_folders(loader: Any) -> list[str]:
    """The folders of a Hydra config loader's search path, in its order (``file://``
    or plain paths; packages aside)."""
    out = []
    for element in loader.get_search_path().get_path():
        path = str(element.path)
        if path.startswith("file://"):
            out.append(path[len("file://") :])
        elif "://" not in path:
            out.append(path)
    return out


def help_groups(loader: Any, sources: Sequence[str]) -> str:
    """Every option of every config group in this run's search path with the first comment
    line of its file (``loader``: Hydra's config loader; ``sources``: its folders)."""
    lines = []
    groups = [g for g in HELP_GROUPS if g in loader.list_groups("")]
    groups += sorted(g for g in loader.list_groups("") if g not in groups and g != "hydra")
    for group in groups:
        options = _public(loader.get_group_options(group))
        if options:  # a folder without config files (outputs/, schemas/) is no group
            lines.append(f"    {group}:")
        for option in options:
            lines.append(f"      {option:<20} {_first_comment(group, option, sources)}".rstrip())
    return "\n".join(lines).replace("$", "$$")


def _first_comment(group: str, option: str, sources: Sequence[str]) -> str:
    for folder in sources:  # Hydra's order: the first folder that has it wins
        file = Path(folder) / group / f"{option}.yaml"
        if file.is_file():
            for line in file.read_text().splitlines():
                if line.startswith("#") and not re.match(r"#\s*(@|yaml-language-server)", line):
                    return line.lstrip("# ").strip()
            return ""
    return ""


#: Config groups whose options are overlays of the whole config (``# @package _global_``).
OVERLAY_GROUPS = ("experiment", "hparams_search")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")


def overlay_error(
    container: Mapping[str, Any], choices: Mapping[str, Any], folders: list[str]
) -> str | None:
    """The one line for an overlay that Hydra would merge in the wrong place, or None.

    An ``experiment``/``hparams_search`` file needs ``# @package _global_`` on its first
    line: without it its keys land under ``experiment.`` (silently unused); with another
    package (``# @package global``) under that name. Names the file and the fix."""
    for group in OVERLAY_GROUPS:
        option = choices.get(group)
        if not option:
            continue
        path = next(
            (Path(f) / group / f"{option}.yaml" for f in folders
             if (Path(f) / group / f"{option}.yaml").is_file()),
            None,
        )  # fmt: skip
        file = str(path) if path else f"{group}/{option}.yaml"
        header = path.read_text().lstrip().splitlines()[:1] if path else []
        package = _PACKAGE.match(header[0]) if header else None
        fix = f"{file} must start with the line '# @package _global_'"
        if package and package[1] != "_global_":
            return f"{fix} (it has '# @package {package[1]}')"
        body = container.get(group)
        if isinstance(body, Mapping) and body:
            keys = list(body)
            return (
                f"{fix} (it sets {', '.join(f'{group}.{k}' for k in keys)} instead of "
                f"{', '.join(keys)}); without that line Hydra merges the file under '{group}.'"
            )
    return None

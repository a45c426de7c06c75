"""``mlpx --help``: the text of Hydra's --help template, made without Hydra's slow listings.

Importing this module registers the ``${mlpx_groups:}`` resolver that conf/hydra/help/mlpx.yaml
uses. Split out of :mod:`mlpx.app.cli` (which imports it) to keep that module readable.
"""

from __future__ import annotations

import re
import sys

from omegaconf import OmegaConf

from mlpx.app.messages import help_groups, search_folders

__all__ = ["HELP_FLAGS", "groups_resolver", "quick_help"]

HELP_FLAGS = ("--help", "-h")
_cache: dict[tuple[str, ...], str] = {}


def groups_resolver() -> str:
    """``${mlpx_groups:}`` in the --help template: the groups of this run's search path.

    Hydra resolves the template each time it composes a config (a run composes twice), so
    the listing (~0.3 s of Hydra's config repository) is made only when --help is asked
    for, once per search path; otherwise the text says where to find it.
    """
    if not any(arg in HELP_FLAGS for arg in sys.argv[1:]):
        return "(mlpx --help lists them)"
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    folders = search_folders(loader)
    key = tuple(folders)
    if key not in _cache:
        _cache[key] = help_groups(loader, folders)
    return _cache[key]


OmegaConf.register_new_resolver("mlpx_groups", groups_resolver, replace=True)


def quick_help(args: list[str], conf_dir: str) -> str | None:
    """``mlpx [overrides] --help`` from Hydra's public compose API: the same text as Hydra's
    own --help with this template, without the two listings of every config group that
    Hydra makes for ``$APP_CONFIG_GROUPS``/``$HYDRA_CONFIG_GROUPS`` (unused here; ~0.5 s).
    None (Hydra answers) for any other flag, a template that uses those names, or an error."""
    rest = [a for a in args if a not in HELP_FLAGS]
    if len(rest) == len(args) or args[: len(rest)] != rest:  # Hydra: overrides come first
        return None
    if any(a.startswith("-") for a in rest):
        return None
    import string

    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(conf_dir, version_base="1.3", job_name="mlpx"):
            cfg = compose("config", overrides=rest, return_hydra_config=True)
            template = str(cfg.hydra.help.template)
            if re.search(r"\$\{?(FLAGS_HELP|APP_CONFIG_GROUPS|HYDRA_CONFIG_GROUPS)", template):
                return None
            clean = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            return string.Template(template).substitute(CONFIG=OmegaConf.to_yaml(clean))
    except Exception:  # Hydra's own --help reports it
        return None

"""mlpx's Hydra plugins (``hydra_plugins/mlpx_optuna_sweeper``) seen by Hydra's plugin scan.

Hydra finds plugins by listing the folders of the ``hydra_plugins`` namespace package
(``pkgutil.walk_packages(hydra_plugins.__path__)``). A wheel install puts mlpx's plugin in
``site-packages/hydra_plugins/``, where the scan sees it. An editable install
(``pip install -e .``) maps it through setuptools' import finder instead, which imports
it but shows the scan no folder: :func:`expose_editable_plugins` adds the plugin's real
folder to the namespace path before Hydra scans.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["PLUGIN_PACKAGE", "expose_editable_plugins"]

PLUGIN_PACKAGE = "hydra_plugins.mlpx_optuna_sweeper"


def expose_editable_plugins() -> bool:
    """Add the folder holding mlpx's plugin to ``hydra_plugins.__path__`` if it is not there;
    True when it was added. Harmless (False) for a wheel install or without the plugin."""
    try:
        import hydra_plugins

        spec = importlib.util.find_spec(PLUGIN_PACKAGE)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = str(Path(next(iter(spec.submodule_search_locations))).parent)
    if folder in list(hydra_plugins.__path__):
        return False
    hydra_plugins.__path__.append(folder)
    return True

"""mlpx's Hydra plugins (``hydra_plugins/mlpx_*``: grid and Optuna sweepers) seen by the scan.

Hydra 1.3 finds plugins by listing the ``hydra_plugins`` namespace package with
``pkgutil.walk_packages(hydra_plugins.__path__)``. A wheel puts ``hydra_plugins/mlpx_*``
into site-packages, where that listing finds them. An editable install (``pip install -e
.``, PEP 660) exposes them through setuptools' import hook instead: importable, but not
listed, so Hydra would not know the grid sweeper (hydra#2359, #3252; Hydra 1.4 moves to
entry points). :func:`expose_plugins` adds the checkout's ``hydra_plugins`` folder to the
namespace's path before Hydra scans it; with a wheel it changes nothing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["expose_plugins"]


def expose_plugins() -> str | None:
    """Add ``<checkout>/hydra_plugins`` to ``hydra_plugins.__path__`` when it is missing.

    Returns the folder added, or None (a wheel install, or already listed).
    """
    import hydra_plugins  # a namespace package: its __path__ lists every installed portion

    folder = Path(__file__).resolve().parents[2] / "hydra_plugins"
    listed = {str(Path(p).resolve()) for p in hydra_plugins.__path__ if Path(p).is_dir()}
    if not folder.is_dir() or str(folder) in listed:
        return None
    hydra_plugins.__path__.append(str(folder))
    return str(folder)

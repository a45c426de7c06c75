"""mlpx's folder in the user's cache, and small JSON files kept there.

The folder is ``$MLPX_CACHE_HOME`` when set, else ``$XDG_CACHE_HOME/mlpx``, else
``~/.cache/mlpx``. What is kept there is an optimisation, never a reason to fail:
:func:`read_json` gives None for a file that is absent, unreadable or not JSON, and
:func:`write_json` writes to a temporary name and renames it (a reader never sees half a
file, also with parallel jobs) and gives False when it cannot.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["cache_home", "read_json", "write_json"]


def cache_home() -> Path | None:
    """mlpx's cache folder (not created here), or None when no home folder is known."""
    setting = os.environ.get("MLPX_CACHE_HOME", "").strip()
    if setting:
        return Path(setting).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")).expanduser()
    return base / "mlpx" if base.is_absolute() else None


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None when it is absent, unreadable or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: Any) -> bool:
    """Write ``value`` as JSON to ``path`` atomically (a temporary file, then
    ``os.replace``), creating its folder; False when that fails (nothing is left behind)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, sort_keys=True)
        os.replace(tmp, path)
        return True
    except (OSError, TypeError, ValueError):
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False

"""A folder of split datasets, so that a run loads its data without importing scikit-learn.

The first load of a configuration (dataset name, its checked parameters, split fractions
and seed) calls scikit-learn's loader or generator and ``train_test_split`` as always, and
saves what they returned in one ``.npz``: the raw features X (n, d), the labels y (n,)
as class indices 0..C-1, the train/val/test index arrays, the class and feature names and
the image shape. Every later load of the same configuration reads that file: digits in a
few milliseconds instead of ~1.2 s, most of which is scikit-learn's import. Standardising
is not cached (it is cheap and computed from the split as before), so a loaded dataset is
bit for bit the one the loader and split make.

The key holds scikit-learn's and NumPy's versions (read from the installed metadata, not
by importing them): an upgrade that could change a generator's draws or a split misses
the cache instead of reusing old arrays.

Folder: ``$MLPX_DATA_CACHE``; by default ``datasets`` in :func:`mlpx.user_cache.cache_home`
(``$MLPX_CACHE_HOME``, else ``$XDG_CACHE_HOME/mlpx``; that is ``~/.cache/mlpx/datasets``).
``MLPX_DATA_CACHE=off`` turns the cache off. The cache is an optimisation, never a reason
to fail: a file that cannot be read or does not match its key is ignored (and rewritten), a
folder that cannot be written is skipped, and sets larger than :data:`MAX_BYTES` are not
cached. Files are written to a temporary name and
renamed, so a reader never sees half a file, also with parallel jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mlpx.user_cache import cache_home

__all__ = ["MAX_BYTES", "CachedSplit", "cache_dir", "cache_key", "load", "save"]

#: Datasets whose arrays take more than this are loaded without the cache.
MAX_BYTES = 64 * 2**20
_FORMAT = 1
_OFF = {"off", "0", "false", "no", "none"}


@dataclass(eq=False)
class CachedSplit:
    """A dataset before scaling: X (n, d) float64 raw, y (n,) int64 in 0..C-1, index arrays."""

    X: np.ndarray
    y: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    image_shape: tuple[int, int] | None


def cache_dir() -> Path | None:
    """The cache folder (not created here), or None when ``MLPX_DATA_CACHE=off`` (or no
    home folder is known)."""
    setting = os.environ.get("MLPX_DATA_CACHE", "").strip()
    if setting.lower() in _OFF and setting:
        return None
    if setting:
        return Path(setting).expanduser()
    home = cache_home()
    return None if home is None else home / "datasets"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(name: str, params: dict[str, Any], split: dict[str, Any]) -> str:
    """A file name for this dataset, its parameters and its split (with library versions)."""
    what = {
        "format": _FORMAT,
        "name": name,
        "params": params,
        "split": split,
        "scikit-learn": _version("scikit-learn"),
        "numpy": np.__version__,
    }
    text = json.dumps(what, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def load(key: str) -> CachedSplit | None:
    """The cached split stored under ``key``, or None (off, absent, unreadable, malformed)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            X = np.ascontiguousarray(z["X"], dtype=np.float64)
            y = z["y"].astype(np.int64)
            idx = [z[k].astype(np.int64) for k in ("train", "val", "test")]
            class_names = [str(c) for c in z["class_names"]]
            feature_names = [str(f) for f in z["feature_names"]]
            shape = tuple(int(s) for s in z["image_shape"])
    except (OSError, KeyError, ValueError, EOFError, TypeError):
        return None  # absent or damaged: load the usual way and rewrite it
    n = len(y)
    if X.ndim != 2 or X.shape[0] != n or len(feature_names) != X.shape[1]:
        return None
    if any(len(i) and (i.min() < 0 or i.max() >= n) for i in idx):
        return None
    if n and (y.min() < 0 or y.max() >= len(class_names)):
        return None
    return CachedSplit(X, y, *idx, class_names, feature_names, shape if len(shape) == 2 else None)


def save(key: str, split: CachedSplit) -> bool:
    """Store ``split`` under ``key``; False when the cache is off, too small or unwritable."""
    folder = cache_dir()
    if folder is None or split.X.nbytes + split.y.nbytes > MAX_BYTES:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    key=np.array(key),
                    X=split.X,
                    y=split.y,
                    train=split.train,
                    val=split.val,
                    test=split.test,
                    class_names=np.array(split.class_names, dtype=str),
                    feature_names=np.array(split.feature_names, dtype=str),
                    image_shape=np.array(split.image_shape or (), dtype=np.int64),
                )
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shared cache is readable
            os.replace(tmp, folder / f"{key}.npz")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return False
    return True

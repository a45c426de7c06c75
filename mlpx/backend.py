"""Array namespaces, dtypes and host transfers.

Everything numerical in mlpx is written against an array namespace ``xp`` (NumPy by
default). NumPy arrays use ``numpy`` itself, so that the hot loop may use ``out=``
buffers; other libraries are reached through ``array-api-compat`` when it is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DTYPES = ("float32", "float64")


def check_dtype(dtype: Any, *, key: str = "dtype") -> str:
    """Return the canonical dtype name, or raise ``ValueError`` naming ``key``."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def namespace_of(*arrays: Any) -> Any:
    """Return the array namespace of ``arrays``: ``numpy`` for NumPy arrays.

    Other array types (torch, cupy, array_api_strict) are resolved with
    ``array_api_compat.array_namespace``.
    """
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np
    try:
        from array_api_compat import array_namespace
    except ImportError as exc:  # pragma: no cover - depends on the install
        kinds = sorted({type(a).__module__ for a in arrays})
        raise TypeError(
            f"arrays of {kinds} need array-api-compat: pip install array-api-compat"
        ) from exc
    return array_namespace(*arrays)


def is_numpy(xp: Any) -> bool:
    """True when ``xp`` is NumPy itself (the namespace with ``out=`` fast paths)."""
    return xp is np


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any namespace to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):  # cupy
        return x.get()
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    return np.asarray(x)

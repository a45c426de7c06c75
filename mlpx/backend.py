"""Array namespaces, devices, dtypes and host transfers.

Everything numerical in mlpx is written once against an array namespace ``xp`` that
follows the array API standard. NumPy arrays use ``numpy`` itself, so the measured hot
loop may use ``out=`` buffers (behind :func:`is_numpy`); the other backends are reached
through ``array-api-compat``, the layer scikit-learn and SciPy use:

| backend | namespace | devices |
|---|---|---|
| ``numpy`` (default) | ``numpy`` | ``cpu`` |
| ``cupy`` | ``array_api_compat.cupy`` | ``cuda``, ``cuda:N`` |
| ``torch`` | ``array_api_compat.torch`` | ``cpu``, ``cuda``, ``cuda:N``, ``mps`` |
| ``array_api_strict`` | ``array_api_strict`` (a strict reference, proves portability) | ``cpu`` |

A backend that is not installed, or a GPU that is not visible, raises
:class:`BackendError` with one line saying what is missing and how to install it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPES = ("float32", "float64")
BACKENDS = ("numpy", "cupy", "torch", "array_api_strict")
DEVICES = {
    "numpy": ("cpu",),
    "cupy": ("cuda", "cuda:N"),
    "torch": ("cpu", "cuda", "cuda:N", "mps"),
    "array_api_strict": ("cpu",),
}
INSTALL = {
    "cupy": ("CuPy", 'pip install "mlpx[cuda12]"'),
    "torch": ("PyTorch", 'pip install "mlpx[torch]"'),
    "array_api_strict": ("array-api-strict", 'pip install "mlpx[strict]"'),
}
_MODULE = {"cupy": "cupy", "torch": "torch", "array_api_strict": "array_api_strict"}


class BackendError(ValueError):
    """A backend that is unknown, not installed, or whose device is not there."""


def check_dtype(dtype: Any, *, key: str = "dtype") -> str:
    """Return the canonical dtype name, or raise ``ValueError`` naming ``key``."""
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", str(dtype))
    name = {"torch.float32": "float32", "torch.float64": "float64"}.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"{key} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def _cuda_index(device: str, accepted: str) -> int:
    """``"cuda"`` -> 0, ``"cuda:N"`` -> N; other spellings raise, listing ``accepted``."""
    if device == "cuda":
        return 0
    head, _, index = device.partition(":")
    if head != "cuda" or not index.isdigit():
        raise BackendError(f"backend.device must be one of {accepted}, got {device!r}")
    return int(index)


def check_device(name: str, device: Any) -> str:
    """The device ``device`` of backend ``name`` by its spelling alone (nothing imported):
    ``None`` gives the backend's default (the first of :data:`DEVICES`); ``cuda:N`` is
    accepted where ``cuda`` is. One-line :class:`BackendError` naming ``backend.device``."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise BackendError(f"backend.name must be one of {', '.join(BACKENDS)}, got {name!r}")
    accepted = DEVICES[name]
    if device is None:
        return accepted[0]
    if isinstance(device, str) and (
        device in accepted
        or ("cuda:N" in accepted and device.startswith("cuda:") and device[5:].isdigit())
    ):
        return device
    if accepted == ("cpu",):
        raise BackendError(f"backend.device must be cpu for backend {name}, got {device!r}")
    raise BackendError(f"backend.device must be one of {', '.join(accepted)}, got {device!r}")


def _check_installed(name: str) -> None:
    if importlib.util.find_spec(_MODULE[name]) is None:
        what, command = INSTALL[name]
        raise BackendError(f"backend {name!r} needs {what}: {command}")
    if importlib.util.find_spec("array_api_compat") is None and name != "array_api_strict":
        raise BackendError(f"backend {name!r} needs array-api-compat: pip install array-api-compat")


@dataclass(frozen=True)
class Backend:
    """An array namespace bound to a device.

    ``xp`` is the namespace, ``device`` the library's own device object (None for NumPy),
    ``name`` and ``device_name`` the strings a config uses.
    """

    name: str
    xp: Any
    device: Any
    device_name: str

    def dtype(self, name: str) -> Any:
        """The namespace's dtype object for ``"float32"`` / ``"float64"``."""
        return getattr(self.xp, check_dtype(name))

    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        """``x`` (any array or nested list) as an array of this backend, on its device.

        Arrays of another library are copied through the host (NumPy); data should be
        moved once, not per batch.
        """
        xp = self.xp
        kind = self.dtype(dtype) if dtype is not None else None
        if self.name == "numpy":
            return np.asarray(to_numpy(x), dtype=kind)
        if not _belongs(x, self):
            x = to_numpy(x)
            if self.name == "array_api_strict" and kind is None and x.dtype == np.int64:
                kind = xp.int64
        return xp.asarray(x, dtype=kind, device=self.device)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device_name!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str | None]]:
        """Pickled as its name and device: the namespace (a module) is looked up again."""
        device = None if self.name == "numpy" else self.device_name
        return (get_backend, (self.name, device))


def _belongs(x: Any, backend: Backend) -> bool:
    module = type(x).__module__.split(".")[0]
    return module == _MODULE.get(backend.name, "numpy")


def get_backend(name: str = "numpy", device: str | None = None) -> Backend:
    """Resolve ``name`` and ``device`` (``None`` = the backend's default) into a Backend.

    Raises :class:`BackendError` (one line) for an unknown name or device, a library that
    is not installed, or a GPU that is not visible.
    """
    device = check_device(name, device)
    accepted = ", ".join(DEVICES[name])
    if name == "numpy":
        return Backend("numpy", np, None, "cpu")
    if name == "array_api_strict":
        _check_installed(name)
        import array_api_strict as xs

        return Backend(name, xs, xs.Device("CPU_DEVICE"), "cpu")
    if name == "cupy":
        index = _cuda_index(device, accepted)
        _check_installed(name)
        import cupy

        if not cupy.cuda.is_available():
            raise BackendError("no CUDA device is visible (cupy.cuda.is_available() is False)")
        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise BackendError(
                f"backend.device={device} but only {count} CUDA device(s) are visible"
            )
        import array_api_compat.cupy as xp

        return Backend(name, xp, cupy.cuda.Device(index), f"cuda:{index}")
    # torch (the spelling was checked above, before looking for a GPU)
    _check_installed(name)
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendError("no CUDA device is visible (torch.cuda.is_available() is False)")
        index = _cuda_index(device, accepted)
        count = torch.cuda.device_count()
        if index >= count:
            raise BackendError(
                f"backend.device={device} but only {count} CUDA device(s) are visible"
            )
        device = f"cuda:{index}"
    if device == "mps" and not torch.backends.mps.is_available():
        raise BackendError("no Apple GPU is visible (torch.backends.mps.is_available() is False)")
    import array_api_compat.torch as xp

    return Backend(name, xp, torch.device(device), device)


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


def device_of(x: Any) -> Any:
    """The device of array ``x`` (None for NumPy)."""
    if isinstance(x, np.ndarray):
        return None
    from array_api_compat import device

    return device(x)


def is_numpy(xp: Any) -> bool:
    """True when ``xp`` is NumPy itself (the namespace with ``out=`` fast paths)."""
    return xp is np


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any namespace to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    return np.asarray(x)

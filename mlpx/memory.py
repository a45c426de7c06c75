"""What the machine has: available RAM (and GPU memory where a library says), for size
checks made before anything large is allocated (issue 19, case 10). Only the standard
library at import; ``torch``/``cupy`` are asked only when they are already imported."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

__all__ = ["available_gpu_memory", "available_ram", "format_bytes", "parameter_count"]


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other POSIX systems: free physical pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_limit() -> int | None:
    """The container's memory limit left (cgroup v2 ``memory.max - memory.current``)."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def _address_space_limit() -> int | None:
    """``ulimit -v`` (RLIMIT_AS) left, if one is set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    try:
        used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(soft - used, 0)


def available_ram() -> int | None:
    """Bytes this process can still allocate: the least of the system's available memory,
    the cgroup's limit and ``ulimit -v``; None where none of them can be read."""
    known = [v for v in (_meminfo_available(), _cgroup_limit(), _address_space_limit()) if v]
    return min(known) if known else None


def available_gpu_memory(library: str) -> int | None:
    """Free bytes on the current CUDA device per ``torch`` or ``cupy`` (None if unknown)."""
    try:
        if library == "torch" and "torch" in sys.modules:
            torch = sys.modules["torch"]
            if torch.cuda.is_available():
                return int(torch.cuda.mem_get_info()[0])
        if library == "cupy" and "cupy" in sys.modules:
            cupy = sys.modules["cupy"]
            if cupy.cuda.is_available():
                return int(cupy.cuda.runtime.memGetInfo()[0])
    except Exception:  # a driver problem shows up when the run builds its arrays
        return None
    return None


def parameter_count(sizes: list[int]) -> int:
    """``sum_l (p_(l-1) + 1) p_l``: weights and biases of an MLP with these widths."""
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``120 MiB``, ``3 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover

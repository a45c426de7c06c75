"""A nested ``state_dict`` (dicts, lists, arrays, scalars) as flat NumPy arrays for ``.npz``.

Used for the optimizer's and the training loop's checkpoints (:mod:`mlpx.checkpoint`):
``np.savez(path, **flatten_state(sd))`` and ``unflatten_state(np.load(path,
allow_pickle=False))``, so that a checkpoint never needs pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flatten_state", "unflatten_state"]

_LIST, _DICT = "#list", "#dict"


def flatten_state(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested ``state_dict`` into ``{"a/b/0/c": array}`` for ``np.savez``.

    Every value becomes a non-object NumPy array (loadable with ``allow_pickle=False``);
    lists and dicts leave ``<path>/#list`` and ``<path>/#dict`` markers holding their
    length, so that ``unflatten_state`` rebuilds them exactly, empty ones included.
    """
    out: dict[str, np.ndarray] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            out[f"{path}/{_DICT}" if path else _DICT] = np.asarray(len(value))
            for key, item in value.items():
                if not isinstance(key, str) or "/" in key or key.startswith("#"):
                    raise ValueError(f"state keys must be strings without '/', got {key!r}")
                walk(item, f"{path}/{key}" if path else key)
        elif isinstance(value, (list, tuple)):
            out[f"{path}/{_LIST}"] = np.asarray(len(value))
            for i, item in enumerate(value):
                walk(item, f"{path}/{i}")
        elif isinstance(value, (np.ndarray, np.generic, bool, int, float, str)):
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise ValueError(f"state[{path!r}] must not be an object array")
            out[path] = array
        else:
            raise ValueError(
                f"state[{path!r}] must be an array, bool, int, float or str, "
                f"got {type(value).__name__}"
            )

    walk(state, prefix)
    return out


def unflatten_state(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``flatten_state`` (accepts the ``NpzFile`` returned by ``np.load``).

    0-d arrays come back as Python scalars (``bool``, ``int``, ``float``, ``str``).
    """
    tree: dict[str, Any] = {}
    for key in flat.keys():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = np.asarray(flat[key])

    def build(node: Any) -> Any:
        if not isinstance(node, dict):
            return node.item() if node.ndim == 0 else node
        if _LIST in node:
            return [build(node[str(i)]) for i in range(int(node[_LIST]))]
        return {k: build(v) for k, v in node.items() if k != _DICT}

    return build(tree)

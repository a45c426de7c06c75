"""State dicts: an optimizer's checked on loading, any nested one flattened for ``.npz``.

A nested ``state_dict`` (dicts, lists, arrays, scalars) is written as flat NumPy arrays,
``np.savez(path, **flatten_state(sd))``, and read back with ``unflatten_state(np.load(path,
allow_pickle=False))``: checkpoints (:mod:`mlpx.checkpoint`) never need pickle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpx.checks import Integer

__all__ = ["check_state_dict", "flatten_state", "unflatten_state"]

Shape = tuple[int, ...]


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def check_state_dict(
    state_dict: Any, *, name: str, keys: Sequence[str], owner: str
) -> tuple[int, list[Shape], list[dict[str, np.ndarray]]]:
    """``(t, shapes, state)`` of an optimizer's ``state_dict``, checked, the arrays copied.

    name : the optimizer's registry name; keys : its per-parameter state keys; owner :
    how it reads in messages (its repr). ``state`` is empty when ``t`` is 0.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    missing = [k for k in ("name", "t", "shapes", "state") if k not in state_dict]
    if missing:
        raise ValueError(f"state_dict is missing {', '.join(missing)}")
    saved = _scalar(state_dict["name"])
    if saved != name:
        raise ValueError(
            f"state_dict['name'] is {saved!r} but this optimizer is {name!r}; "
            f"build make_optimizer({saved!r}, ...) to load it"
        )
    t = Integer(0).check("state_dict['t']", _scalar(state_dict["t"]))
    try:
        shapes = [tuple(int(n) for n in s) for s in state_dict["shapes"]]
    except (TypeError, ValueError):
        raise ValueError(
            f"state_dict['shapes'] must be a list of shapes, got {state_dict['shapes']!r}"
        ) from None
    entries = list(state_dict["state"])
    if t > 0 and len(entries) != len(shapes):
        raise ValueError(
            f"state_dict['state'] must have one entry per parameter ({len(shapes)}), "
            f"got {len(entries)}"
        )
    if t == 0 and entries:
        raise ValueError("state_dict['state'] must be empty when state_dict['t'] is 0")
    keys = sorted(keys)
    state: list[dict[str, np.ndarray]] = []
    for i, (entry, shape) in enumerate(zip(entries, shapes, strict=True)):
        if not isinstance(entry, Mapping) or sorted(entry) != keys:
            got = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
            raise ValueError(
                f"state_dict['state'][{i}] must have the keys {keys} of {owner}, got {got}"
            )
        arrays = {k: np.array(entry[k], copy=True) for k in keys}
        for k, a in arrays.items():
            if a.shape != shape:
                raise ValueError(
                    f"state_dict['state'][{i}][{k!r}] must have shape {shape}, got {a.shape}"
                )
        state.append(arrays)
    return t, shapes, state


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

    0-d arrays come back as Python scalars (``bool``, ``int``, ``float``, ``str``). A list
    marker whose entries do not match its length raises ``ValueError`` naming the path.
    """
    tree: dict[str, Any] = {}
    for key in flat.keys():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"state key {key!r} nests under a value")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"state key {key!r} is both a value and a container")
        node[leaf] = np.asarray(flat[key])

    def build(node: Any, path: str) -> Any:
        if not isinstance(node, dict):
            return node.item() if node.ndim == 0 else node
        if _LIST in node:
            items = {k for k in node if k != _LIST}
            n = node[_LIST]
            if not isinstance(n, np.ndarray) or n.ndim or n.dtype.kind not in "iu":
                raise ValueError(f"state[{path!r}] has a list length that is not an integer")
            if items != {str(i) for i in range(int(n))}:
                raise ValueError(
                    f"state[{path!r}] must hold the list entries 0..{int(n) - 1}, "
                    f"got {sorted(items)[:5]}"
                )
            return [build(node[str(i)], f"{path}/{i}".lstrip("/")) for i in range(int(n))]
        return {k: build(v, f"{path}/{k}".lstrip("/")) for k, v in node.items() if k != _DICT}

    return build(tree, "")

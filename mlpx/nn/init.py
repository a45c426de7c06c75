"""Weight initialisers ``W_l ~ D(fan_in = p_(l-1), fan_out = p_l)``; biases start at 0.

Every initialiser draws from one seeded ``numpy.random.Generator`` so the same seed gives
the same weights whatever the dtype or backend (weights are drawn in float64 on the host
and then cast).

| name | distribution |
|---|---|
| glorot_uniform | U(-r, r), r = sqrt(6 / (fan_in + fan_out)) |
| glorot_normal | N(0, 2 / (fan_in + fan_out)) |
| he_uniform | U(-r, r), r = sqrt(6 / fan_in) |
| he_normal | N(0, 2 / fan_in) |
| lecun_normal | N(0, 1 / fan_in) |
| normal | N(0, std^2), std given (default 0.01) |
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

Initializer = Callable[[np.random.Generator, int, int, float], np.ndarray]


def _uniform(scale: Callable[[int, int], float]) -> Initializer:
    def draw(rng: np.random.Generator, fan_in: int, fan_out: int, std: float) -> np.ndarray:
        r = scale(fan_in, fan_out)
        return rng.uniform(-r, r, size=(fan_out, fan_in))

    return draw


def _normal(scale: Callable[[int, int], float]) -> Initializer:
    def draw(rng: np.random.Generator, fan_in: int, fan_out: int, std: float) -> np.ndarray:
        return rng.normal(0.0, scale(fan_in, fan_out), size=(fan_out, fan_in))

    return draw


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": _uniform(lambda i, o: math.sqrt(6.0 / (i + o))),
    "glorot_normal": _normal(lambda i, o: math.sqrt(2.0 / (i + o))),
    "he_uniform": _uniform(lambda i, o: math.sqrt(6.0 / i)),
    "he_normal": _normal(lambda i, o: math.sqrt(2.0 / i)),
    "lecun_normal": _normal(lambda i, o: math.sqrt(1.0 / i)),
    "normal": lambda rng, i, o, std: rng.normal(0.0, std, size=(o, i)),
}


def init_weights(
    name: str, sizes: list[int], rng: np.random.Generator, std: float = 0.01
) -> list[np.ndarray]:
    """Draw ``W_1 .. W_L`` (float64) for layer sizes ``[p_0, ..., p_L]``.

    ``W_l`` has shape ``(p_l, p_(l-1))``, the lecture's orientation.
    """
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"init must be one of {', '.join(INITIALIZERS)}, got {name!r}")
    if not (isinstance(std, int | float) and math.isfinite(std) and std > 0):
        raise ValueError(f"init_std must be a positive finite number, got {std!r}")
    draw = INITIALIZERS[name]
    return [draw(rng, fan_in, fan_out, float(std)) for fan_in, fan_out in itertools.pairwise(sizes)]

"""mlpx.fast.optim.FlatOptimizer against the rules of mlpx.nn.optim, bit for bit.

Every case runs the same gradients through ``opt.step`` on separate per-parameter arrays
(the lecture's code) and through ``FlatOptimizer.step`` on one flat buffer (the NumPy hot
path: ``out=`` passes, or the Numba kernels with ``jit=True``); parameters and state must
be equal to the last bit. Tests of the kernels skip without Numba.
"""

from __future__ import annotations

import copy
import math
import pickle
import tracemalloc

import numpy as np
import pytest

from mlpx.fast import kernels
from mlpx.fast.optim import CHUNK_BYTES, FlatOptimizer, flat_views
from mlpx.nn.optim import OPTIMIZERS, SGD, flatten_state, make_optimizer

needs_numba = pytest.mark.skipif(not kernels.available(), reason="Numba is not installed")
DTYPES = ["float32", "float64"]
SHAPES = [(20, 15), (15,), (4, 20), (4,), ()]  # an MLP's W_1, b_1, W_2, b_2 and a 0-d one
SIZE = sum(math.prod(s) for s in SHAPES)
STEPS = 12
SCHEDULE = {"name": "cosine", "T_max": STEPS}

# Every combination tests/test_optimizers.py checks against torch.optim, and the branches
# of the kernels (lerp weight 1 - beta1 or 1 - alpha on either side of 0.5).
CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("momentum", {"lr": 0.05}),
    ("momentum", {"lr": 0.05, "dampening": 0.5}),
    ("nesterov", {"lr": 0.05}),
    ("nesterov", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.2}),
    ("adam", {}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "amsgrad": True, "betas": (0.8, 0.99)}),
    ("adam", {"lr": 0.05, "betas": (0.3, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "betas": (0.0, 0.0)}),
    ("adamw", {"lr": 0.05}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.0, "betas": (0.5, 0.9)}),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.01, "centered": True, "alpha": 0.3}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.7}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "eps": 1e-4}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
]
CASE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]
JITS = [False, pytest.param(True, marks=needs_numba)]


def test_cases_cover_every_optimizer() -> None:
    assert {name for name, _ in CASES} == set(OPTIMIZERS)


def gradients(dtype: str, steps: int = STEPS, size: int = SIZE, seed: int = 1) -> list:
    """Gradients over several orders of magnitude, as a run sees them."""
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(size) * 10.0 ** rng.integers(-4, 2)).astype(dtype)
        for _ in range(steps)
    ]


def start(dtype: str, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(size).astype(dtype)


class Pair:
    """The same optimizer twice: generic ``step`` on separate arrays, ``FlatOptimizer``."""

    def __init__(self, name: str, hp: dict, dtype: str, jit: bool, shapes=SHAPES) -> None:
        size = sum(math.prod(s) for s in shapes)
        self.shapes = shapes
        self.generic = make_optimizer(name, **hp)
        self.params = [v.copy() for v in flat_views(start(dtype, size), shapes)]
        self.opt = make_optimizer(name, jit=jit, **hp)
        self.flat = start(dtype, size)
        self.gflat = np.empty_like(self.flat)
        self.fast = FlatOptimizer(self.opt, self.flat, self.gflat, shapes)

    def step(self, g: np.ndarray) -> None:
        self.generic.step(self.params, [v.copy() for v in flat_views(g, self.shapes)])
        self.gflat[...] = g
        self.fast.step()

    def assert_equal(self) -> None:
        for a, b in zip(flat_views(self.flat, self.shapes), self.params, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert_same_state(self.opt.state_dict(), self.generic.state_dict())


def assert_same_state(a: dict, b: dict) -> None:
    fa, fb = flatten_state(a), flatten_state(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        assert fa[key].dtype == fb[key].dtype, key
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def count_kernel_calls(monkeypatch) -> list[str]:
    """Replace the optimizer kernels by counting wrappers; the list of calls made."""
    k = kernels.get()
    calls: list[str] = []

    def counting(name: str, fn):
        def counted(*args):
            calls.append(name)
            return fn(*args)

        return counted

    for name in ("adam", "sgd", "rmsprop", "adagrad"):
        monkeypatch.setattr(k, name, counting(name, getattr(k, name)))
    return calls


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("jit", JITS, ids=["numpy", "kernels"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "hp"), CASES, ids=CASE_IDS)
def test_flat_steps_are_bit_identical_to_the_rule(name, hp, dtype, jit, monkeypatch) -> None:
    calls = count_kernel_calls(monkeypatch) if jit else []
    pair = Pair(name, {**hp, "schedule": SCHEDULE}, dtype, jit)
    assert (pair.fast.kernels is not None) == jit
    for g in gradients(dtype):
        pair.step(g)
        pair.assert_equal()  # every step, state included
    assert pair.opt.t == pair.generic.t == STEPS
    assert np.abs(pair.flat - start(dtype)).max() > 0  # it moved
    if jit:  # every step ran a kernel, but SGD's first with momentum (b_1 = g_1)
        first = not isinstance(pair.opt, SGD) or pair.opt.hparams["momentum"] == 0
        assert len(calls) == STEPS - (0 if first else 1)


@pytest.mark.parametrize("jit", JITS, ids=["numpy", "kernels"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "hp"),
    [
        ("adam", {"lr": 0.01}),
        ("adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
        ("adamw", {"lr": 0.01, "betas": (0.3, 0.9)}),
    ],
)
def test_adam_in_l2_sized_chunks_is_bit_identical(name, hp, dtype, jit) -> None:
    """A buffer over one chunk (CHUNK_BYTES) takes Adam's chunked NumPy path."""
    chunk = CHUNK_BYTES // np.dtype(dtype).itemsize
    shapes = [(3, chunk // 2), (chunk // 2 + 7,), (5,)]
    assert sum(math.prod(s) for s in shapes) > chunk
    pair = Pair(name, hp, dtype, jit, shapes)
    size = pair.flat.size
    for g in gradients(dtype, steps=3, size=size):
        pair.step(g)
    pair.assert_equal()


@needs_numba
def test_adam_kernel_propagates_nan_like_numpy() -> None:
    outs = []
    for jit in (True, False):
        flat, gflat = np.ones(10), np.full(10, 0.5)
        gflat[3] = np.nan
        FlatOptimizer(make_optimizer("adam", amsgrad=True, jit=jit), flat, gflat, [(10,)]).step()
        outs.append(flat)
    assert np.isnan(outs[0][3]) and np.isnan(outs[1][3])
    assert np.array_equal(outs[0], outs[1], equal_nan=True)


# --------------------------------------------------------------------------- state


@pytest.mark.parametrize("jit", JITS, ids=["numpy", "kernels"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_is_views_of_flat_buffers_and_round_trips(name, jit) -> None:
    hp = {
        "sgd": {"momentum": 0.9},
        "momentum": {},
        "nesterov": {"weight_decay": 0.1},
        "adam": {"amsgrad": True},
        "adamw": {"amsgrad": True},
        "rmsprop": {"centered": True, "momentum": 0.5},
        "adagrad": {"lr_decay": 0.01},
    }[name]
    pair = Pair(name, {**hp, "schedule": SCHEDULE}, "float64", jit)
    grads = gradients("float64", steps=2 * STEPS)
    for g in grads[:5]:
        pair.step(g)
    state = pair.opt.state
    assert state is not None and all(state)  # every kind of state exists
    for key, buffer in pair.fast.state.items():
        assert buffer.shape == (SIZE,)
        for s, view in zip(state, flat_views(buffer, SHAPES), strict=True):
            assert s[key].base is buffer and np.array_equal(s[key], view)

    # flat -> generic: a fresh optimizer loads the flat one's state_dict and continues
    resumed = make_optimizer(name, schedule=SCHEDULE, **hp)
    resumed.load_state_dict(pair.opt.state_dict())
    params = [v.copy() for v in flat_views(pair.flat, SHAPES)]
    for g in grads[5:9]:
        resumed.step(params, [v.copy() for v in flat_views(g, SHAPES)])
        pair.step(g)
    pair.assert_equal()
    for a, b in zip(params, flat_views(pair.flat, SHAPES), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same_state(resumed.state_dict(), pair.opt.state_dict())

    # generic -> flat: FlatOptimizer picks up a load_state_dict made between its steps
    saved_params, saved = pair.flat.copy(), pair.generic.state_dict()
    for g in grads[9:12]:
        pair.step(g)
    pair.flat[...] = saved_params  # back to the saved point, by the generic run's state
    pair.opt.load_state_dict(saved)
    pair.params = [v.copy() for v in flat_views(saved_params, SHAPES)]
    pair.generic.load_state_dict(saved)
    for g in grads[9:]:
        pair.step(g)
        pair.assert_equal()
    assert pair.opt.t == len(grads)


def test_a_generic_step_between_flat_steps_updates_the_flat_state() -> None:
    pair = Pair("adam", {"amsgrad": True, "lr": 0.01}, "float64", False)
    grads = gradients("float64", steps=4)
    pair.step(grads[0])
    # the same optimizer, its generic rule, on the views: state entries stay the views
    views = flat_views(pair.flat, SHAPES)
    pair.gflat[...] = grads[1]
    pair.opt.step(views, flat_views(pair.gflat, SHAPES))
    pair.generic.step(pair.params, [v.copy() for v in flat_views(grads[1], SHAPES)])
    for g in grads[2:]:
        pair.step(g)
    pair.assert_equal()


def test_pickled_optimizer_continues_the_flat_run() -> None:
    pair = Pair("rmsprop", {"centered": True, "momentum": 0.5}, "float32", False)
    grads = gradients("float32", steps=8)
    for g in grads[:4]:
        pair.step(g)
    for clone in (pickle.loads(pickle.dumps(pair.opt)), copy.deepcopy(pair.opt)):
        flat = pair.flat.copy()
        other = FlatOptimizer(clone, flat, np.empty_like(flat), SHAPES)
        for g in grads[4:]:
            other.g[...] = g
            other.step()
        expected = Pair("rmsprop", {"centered": True, "momentum": 0.5}, "float32", False)
        for g in grads:
            expected.step(g)
        np.testing.assert_array_equal(flat, expected.flat)
        assert_same_state(clone.state_dict(), expected.opt.state_dict())


# --------------------------------------------------------------------------- cost


@pytest.mark.parametrize(
    ("name", "hp"),
    [
        ("sgd", {}),
        ("sgd", {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.1}),
        ("nesterov", {"weight_decay": 0.1}),
        ("adam", {"weight_decay": 0.1, "amsgrad": True}),
        ("adamw", {}),
    ],
)
def test_numpy_flat_step_allocates_nothing(name, hp) -> None:
    shapes = [(200, 100), (100,), ()]
    flat = np.random.default_rng(4).standard_normal(20101)
    gflat = np.random.default_rng(5).standard_normal(20101)
    fast = FlatOptimizer(make_optimizer(name, jit=False, **hp), flat, gflat, shapes)
    fast.step()  # creates the state and the scratch buffers
    tracemalloc.start()
    try:
        fast.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000, f"a step allocated {peak} bytes (one parameter is 160000)"


# --------------------------------------------------------------------------- contract


def test_buffers_must_follow_the_contract() -> None:
    opt = make_optimizer("adam")
    p, g = np.zeros(10), np.zeros(10)
    with pytest.raises(ValueError, match=r"^shapes must add up to params\.size \(10 elements\)"):
        FlatOptimizer(opt, p, g, [(3, 3)])
    with pytest.raises(ValueError, match=r"^params must be a 1-d C-contiguous NumPy array"):
        FlatOptimizer(opt, np.zeros((2, 5)), g, [(2, 5)])
    with pytest.raises(ValueError, match=r"^grads must be a 1-d C-contiguous .*\(strided\)"):
        FlatOptimizer(opt, p, np.zeros(20)[::2], [(10,)])
    with pytest.raises(ValueError, match=r"^grads must have the dtype and size of params"):
        FlatOptimizer(opt, p, g.astype(np.float32), [(10,)])
    with pytest.raises(ValueError, match=r"^params and grads must not share memory"):
        FlatOptimizer(opt, p, p, [(10,)])
    FlatOptimizer(opt, p, g, [(2, 5)]).step()
    with pytest.raises(ValueError, match=r"params must keep the shapes"):  # another model
        FlatOptimizer(opt, p, g, [(5, 2)]).step()


def test_jit_settings_of_the_optimizer() -> None:
    p, g = np.zeros(4), np.ones(4)
    assert FlatOptimizer(make_optimizer("adam", jit=False), p, g, [(4,)]).kernels is None
    half = np.zeros(4, np.float16)  # no kernel for float16: the NumPy passes
    assert FlatOptimizer(make_optimizer("adam"), half, half + 1, [(4,)]).kernels is None


def test_jit_true_without_numba_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "available", lambda: False)
    opt = make_optimizer("adam", jit="true")  # building it imports nothing
    assert opt.jit == "true"
    with pytest.raises(kernels.JitError, match=r"^jit=true needs Numba"):
        FlatOptimizer(opt, np.zeros(4), np.ones(4), [(4,)])
    assert FlatOptimizer(make_optimizer("adam"), np.zeros(4), np.ones(4), [(4,)]).kernels is None


def test_a_rule_rewritten_in_a_subclass_runs_per_parameter() -> None:
    class ScaledSGD(SGD):
        """Not elementwise: each parameter's step is scaled by its own norm."""

        name = "scaled_sgd"

        def update(self, xp, p, g, s, lr, t):
            p -= (lr / (1 + float(np.linalg.norm(g)))) * g

    flat, gflat = np.zeros(7), np.arange(7.0)
    fast = FlatOptimizer(ScaledSGD(lr=1.0), flat, gflat, [(3,), (4,)])
    assert fast.rule is None
    fast.step()
    parts = [np.zeros(3), np.zeros(4)]
    ScaledSGD(lr=1.0).step(parts, [gflat[:3], gflat[3:]])
    np.testing.assert_array_equal(flat, np.concatenate(parts))

"""mlpx.fast.step against the lecture's model (mlpx.nn.model): the same numbers, bit for bit
where the operations are the same; kept buffers that never leak into earlier results; no
large allocation per step; the flat parameter buffer; the compiled kernels on and off."""

from __future__ import annotations

import copy
import pickle
import tracemalloc

import numpy as np
import pytest

from mlpx import MLP, make_optimizer
from mlpx.fast import kernels
from mlpx.fast.step import FastStep
from mlpx.nn.activations import ACTIVATIONS

ALL_ACTIVATIONS = sorted(ACTIVATIONS)
JIT = ["false", "true"] if kernels.available() else ["false"]


def data(n: int, d: int, C: int, seed: int = 0, dtype: str = "float64"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(dtype), rng.integers(0, C, size=n)


def deltas(g) -> list[np.ndarray]:
    """delta_W, delta_a and delta_f of every layer (delta_b is compared apart), copied."""
    return [np.array(a, copy=True) for a in (*g.weights, *g.pre_activations, *g.activations)]


def pair(sizes, activations, dtype="float64", jit="false", seed=0):
    """Two networks with the same weights: one for the model's code, one for FastStep."""
    ref = MLP(sizes, activations=activations, seed=seed, dtype=dtype, jit="false")
    net = MLP(sizes, activations=activations, seed=seed, dtype=dtype, jit=jit)
    return ref, net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_fast_step_equals_the_model(activation: str, dtype: str) -> None:
    """Without kernels: loss, hit count, every delta_W, delta_a, delta_f and the forward
    cache equal the model's bit for bit; delta_b (a GEMV instead of a sum) to a few ulp.
    (With kernels, tests/test_kernels.py compares the two fast steps.)"""
    sizes = [7, 9, 6, 4]
    ref, net = pair(sizes, [activation, activation, "linear"], dtype, "false")
    step = FastStep(net)
    X, y = data(40, 7, 4, seed=3, dtype=dtype)
    Xc, yc = net.check_data(X, y)
    for rows in (np.arange(16), np.arange(16, 32), np.arange(32, 40), np.arange(16)):
        loss, correct, g = step.train_batch(Xc, yc, rows)
        ref_loss, ref_correct, ref_g = ref.train_batch(Xc, yc, rows)
        assert isinstance(loss, float) and isinstance(correct, int)
        assert loss == float(ref_loss)
        assert correct == int(ref_correct)
        for a, b in zip(deltas(g), deltas(ref_g), strict=True):
            np.testing.assert_array_equal(a, b)
        tol = 1e-5 if dtype == "float32" else 1e-13
        for a, b in zip(g.biases, ref_g.biases, strict=True):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * float(np.abs(b).max() + 1e-30))
        for a, b in zip(net.cache.f, ref.cache.f, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit", JIT)
def test_training_with_an_optimizer_equals_the_generic_loop(jit: str) -> None:
    """Forward, backward and Adam through FastStep follow the model's loop step for step
    (delta_b differs by ulps, so the parameters agree to ~1e-12 after 10 steps)."""
    ref, net = pair([6, 10, 8, 3], "tanh", "float64", jit, seed=4)
    opt_ref = make_optimizer("adam", lr=0.01, weight_decay=0.01)
    step = FastStep(net, make_optimizer("adam", lr=0.01, weight_decay=0.01, jit=jit))
    X, y = data(80, 6, 3, seed=5)
    for s in range(0, 80, 8):
        rows = np.arange(s, s + 8)
        step.train_batch(X, y, rows)
        step.update()
        _, _, g = ref.train_batch(X, y, rows)
        opt_ref.step(ref.parameters(), g.parameters())
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert step.optimizer is not None
    assert step.optimizer.opt.t == opt_ref.t == 10


def test_results_of_the_model_are_never_overwritten_by_fast_steps() -> None:
    net = MLP([6, 8, 5, 3], activations=["relu", "tanh", "linear"], seed=0)
    X, y = data(10, 6, 3)
    loss, g = net.loss_and_grads(X, y, input_grad=True)
    logits = net.forward(X)
    kept, kept_logits = deltas(g), logits.copy()
    step = FastStep(net)
    X2, y2 = data(10, 6, 3, seed=1)
    for rows in (np.arange(10), np.arange(4), np.arange(10)):
        step.train_batch(X2, y2, rows)
    for before, now in zip(kept, deltas(g), strict=True):
        np.testing.assert_array_equal(before, now)
    np.testing.assert_array_equal(kept_logits, logits)
    assert loss == pytest.approx(net.loss(X, y))


def test_bad_rows_are_rejected() -> None:
    step = FastStep(MLP([5, 12, 3], seed=4))
    X, y = data(30, 5, 3, seed=5)
    with pytest.raises(IndexError):
        step.train_batch(X, y, np.array([0, 30]))
    with pytest.raises(ValueError, match="rows must be an integer index array"):
        step.train_batch(X, y, np.ones(30, dtype=bool))
    with pytest.raises(ValueError, match="FastStep runs NumPy networks only"):
        FastStep(MLP([5, 3], backend="array_api_strict"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_training_step_allocates_nothing_large(dtype: str) -> None:
    """After the first steps, a step allocates only small things: O(batch) index and loss
    temporaries and NumPy's casting buffer (<= 8192 elements) in the relu mask product."""
    net = MLP([64, 512, 512, 10], seed=0, dtype=dtype)
    step = FastStep(net, make_optimizer("adam", lr=1e-3))
    X, y = data(2048, 64, 10, dtype=dtype)
    rows = np.random.default_rng(1).permutation(2048)
    for s in (0, 256, 512):  # creates the buffers
        step.train_batch(X, y, rows[s : s + 256])
        step.update()
    tracemalloc.start()
    try:
        step.train_batch(X, y, rows[768:1024])
        step.update()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_layer = 256 * 512 * np.dtype(dtype).itemsize  # one (batch, width) array
    assert peak < one_layer / 4, f"a step allocated {peak} bytes (a layer is {one_layer})"


def test_float32_stays_float32_on_the_hot_path() -> None:
    net = MLP([20, 16, 3], seed=0, dtype="float32")
    opt = make_optimizer("adam", lr=1e-2, weight_decay=0.1)
    step = FastStep(net, opt)
    X, y = data(50, 20, 3, dtype="float32")
    for s in range(0, 50, 16):
        _, _, g = step.train_batch(X, y, np.arange(s, min(s + 16, 50)))
        step.update()
    arrays = [*net.parameters(), *deltas(g), *g.biases, *net.cache.a, *net.cache.f]
    assert all(a.dtype == np.float32 for a in arrays)
    for entry in opt.state_dict()["state"]:
        assert all(a.dtype == np.float32 for a in entry.values())


def test_parameters_become_views_of_one_buffer_and_reassignment_is_noticed() -> None:
    net = MLP([4, 5, 3], seed=0)
    before = [p.copy() for p in net.parameters()]
    step = FastStep(net)
    params = net.parameters()
    assert all(p.base is step.params for p in params)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a, b)
    X, y = data(6, 4, 3)
    net.weights[0] = np.zeros((5, 4))  # a plain list item: FastStep copies it in at its step
    loss, _, _ = step.train_batch(X, y, np.arange(6))
    assert net.weights[0].base is step.params
    np.testing.assert_array_equal(net.weights[0], 0.0)
    assert loss == pytest.approx(net.loss(X, y))
    net.weights[1] = np.zeros((5, 3))  # wrong shape: named at the next step
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(3, 5\), got \(5, 3\)"):
        step.train_batch(X, y, np.arange(6))


def test_a_network_trained_on_the_fast_path_pickles_and_deep_copies() -> None:
    net = MLP([4, 6, 3], activations="gelu", seed=1)
    step = FastStep(net, make_optimizer("sgd", lr=0.1, momentum=0.9))
    X, y = data(12, 4, 3)
    for _ in range(3):
        step.train_batch(X, y, np.arange(12))
        step.update()
    logits = net.forward(X)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        np.testing.assert_array_equal(other.forward(X), logits)
        assert other.activations == net.activations and other.jit == net.jit

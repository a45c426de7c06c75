"""The NumPy hot path: buffers reused without harm, no large allocations, and the speed
benchmark (benchmarks/speed.py) starts and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mlpx import MLP, make_optimizer
from mlpx.nn.optim import OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
SPEED = ROOT / "benchmarks" / "speed.py"


def data(n: int, d: int, C: int, seed: int = 0, dtype: str = "float64"):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(dtype), rng.integers(0, C, size=n)


def deltas(g) -> list[np.ndarray]:
    """Every array of a Gradients, copied."""
    arrays = [*g.weights, *g.biases, *g.pre_activations, *g.activations]
    if g.inputs is not None:
        arrays.append(g.inputs)
    return [np.array(a, copy=True) for a in arrays]


# --------------------------------------------------------------------------- buffers


def test_results_returned_earlier_are_never_overwritten() -> None:
    net = MLP([6, 8, 5, 3], activations=["relu", "tanh", "linear"], seed=0)
    X, y = data(10, 6, 3)
    loss, g = net.loss_and_grads(X, y, input_grad=True)
    logits = net.forward(X)
    kept, kept_logits = deltas(g), logits.copy()
    # later work of every kind: fresh calls, buffered training steps, other batch sizes
    X2, y2 = data(10, 6, 3, seed=1)
    net.loss_and_grads(X2, y2)
    h = None
    for rows in (np.arange(10), np.arange(4), np.arange(10)):
        _, _, h = net.train_batch(X2, y2, rows, out=h)
        _, h = net.batch_loss_and_grads(X2[rows], y2[rows], out=h)
    net.forward(X2)
    for before, now in zip(kept, deltas(g), strict=True):
        np.testing.assert_array_equal(before, now)
    np.testing.assert_array_equal(kept_logits, logits)
    assert loss == pytest.approx(net.loss(X, y))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_buffered_steps_equal_fresh_ones(activation: str) -> None:
    """out= and the kept buffers give bit-identical deltas, batch size changes included."""
    net = MLP([7, 9, 6, 4], activations=activation, seed=2)
    X, y = data(40, 7, 4, seed=3)
    g = None
    for rows in (np.arange(16), np.arange(16, 32), np.arange(32, 40), np.arange(16)):
        loss_fresh, fresh = net.loss_and_grads(X[rows], y[rows], input_grad=True)
        loss, g = net.batch_loss_and_grads(X[rows], y[rows], out=g, input_grad=True)
        assert loss == loss_fresh
        for a, b in zip(deltas(fresh), deltas(g), strict=True):
            np.testing.assert_array_equal(a, b)


def test_train_batch_is_batch_loss_and_grads_on_the_rows() -> None:
    net = MLP([5, 12, 3], seed=4)
    X, y = data(30, 5, 3, seed=5)
    rows = np.random.default_rng(6).permutation(30)[:8]
    loss, correct, g = net.train_batch(X, y, rows)
    logits = net._f[-1].copy()
    ref_loss, ref = net.batch_loss_and_grads(X[rows], y[rows])
    assert isinstance(loss, float) and isinstance(correct, int)
    assert loss == ref_loss
    assert correct == int(np.sum(np.argmax(logits, axis=1) == y[rows]))
    for a, b in zip(deltas(g), deltas(ref), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(IndexError):
        net.train_batch(X, y, np.array([0, 30]))
    with pytest.raises(ValueError, match="rows must be an integer index array"):
        net.train_batch(X, y, np.ones(30, dtype=bool))


def _step(net, opt, X, y, rows, g):
    _, _, g = net.train_batch(X, y, rows, out=g)
    opt.step(net.parameters(), g.parameters())
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_training_step_allocates_nothing_large(dtype: str) -> None:
    """After the first steps, a step allocates only small things: O(batch) index and loss
    temporaries and NumPy's casting buffer (<= 8192 elements) in the relu mask product."""
    net = MLP([64, 512, 512, 10], seed=0, dtype=dtype)
    opt = make_optimizer("adam", lr=1e-3)
    X, y = data(2048, 64, 10, dtype=dtype)
    rows = np.random.default_rng(1).permutation(2048)
    g = None
    for s in (0, 256, 512):  # creates the buffers
        g = _step(net, opt, X, y, rows[s : s + 256], g)
    Xb, yb = X[rows[:256]], y[rows[:256]]  # what fit passes today
    tracemalloc.start()
    try:
        g = _step(net, opt, X, y, rows[768:1024], g)
        _, h = net.batch_loss_and_grads(Xb, yb, out=g)
        opt.step(net.parameters(), h.parameters())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_layer = 256 * 512 * np.dtype(dtype).itemsize  # one (batch, width) array
    assert h is g
    assert peak < one_layer / 4, f"a step allocated {peak} bytes (a layer is {one_layer})"


def test_float32_stays_float32_on_the_hot_path() -> None:
    net = MLP([20, 16, 3], seed=0, dtype="float32")
    opt = make_optimizer("adam", lr=1e-2, weight_decay=0.1)
    X, y = data(50, 20, 3, dtype="float32")
    g = None
    for s in range(0, 50, 16):
        g = _step(net, opt, X, y, np.arange(s, min(s + 16, 50)), g)
    arrays = [*net.parameters(), *deltas(g), *net._a, *net._f]
    assert all(a.dtype == np.float32 for a in arrays)
    for entry in opt.state_dict()["state"]:
        assert all(a.dtype == np.float32 for a in entry.values())


# --------------------------------------------------------------------------- parameters


def test_parameters_are_views_of_one_buffer_and_assignment_copies() -> None:
    net = MLP([4, 5, 3], seed=0)
    params = net.parameters()
    base = params[0].base
    assert base is not None and all(p.base is base for p in params)
    new = np.full((5, 4), 0.5)
    net.weights[0] = new  # copied in: the list taken before stays live
    assert params[0] is net.weights[0]
    np.testing.assert_array_equal(params[0], new)
    new[...] = 0.0  # the caller's array is not the network's
    assert params[0][0, 0] == 0.5
    net.biases = [np.ones(5), np.ones(3)]
    np.testing.assert_array_equal(params[3], np.ones(3))
    net.weights[-1] = net.weights[-1] * 2
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(3, 5\), got \(5, 3\)"):
        net.weights[1] = np.zeros((5, 3))


OPTIMIZER_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1}),
    ("nesterov", {"lr": 0.05, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", {"lr": 0.01, "amsgrad": True}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
]


def test_optimizer_cases_cover_every_optimizer() -> None:
    assert {name for name, _ in OPTIMIZER_CASES} | {"momentum"} == set(OPTIMIZERS)


@pytest.mark.parametrize(("name", "hparams"), OPTIMIZER_CASES)
def test_flat_update_equals_the_per_parameter_update(name: str, hparams: dict) -> None:
    """The whole-buffer update is the per-array one, bit for bit, state included."""
    net = MLP([6, 10, 4], seed=1)
    X, y = data(64, 6, 4, seed=2)
    separate = [np.array(p, copy=True) for p in net.parameters()]  # not views of a buffer
    flat_opt, sep_opt = make_optimizer(name, **hparams), make_optimizer(name, **hparams)
    g = None
    for s in range(0, 64, 16):
        _, g = net.batch_loss_and_grads(X[s : s + 16], y[s : s + 16], out=g)
        grads = g.parameters()
        sep_opt.step(separate, [np.array(a, copy=True) for a in grads])
        flat_opt.step(net.parameters(), grads)
        for a, b in zip(net.parameters(), separate, strict=True):
            np.testing.assert_array_equal(a, b)
        # the same weights for the next gradient: keep the two runs on one trajectory
    sd_flat, sd_sep = flat_opt.state_dict(), sep_opt.state_dict()
    for e1, e2 in zip(sd_flat["state"], sd_sep["state"], strict=True):
        assert e1.keys() == e2.keys()
        for k in e1:
            np.testing.assert_array_equal(e1[k], e2[k])


def test_flat_optimizer_resumes_exactly_from_a_state_dict() -> None:
    X, y = data(96, 6, 4, seed=7)
    nets = [MLP([6, 10, 4], seed=1) for _ in range(2)]
    opts = [make_optimizer("adam", lr=0.01, amsgrad=True) for _ in range(2)]
    g = [None, None]
    for s in range(0, 48, 16):
        for i in range(2):
            _, g[i] = nets[i].batch_loss_and_grads(X[s : s + 16], y[s : s + 16], out=g[i])
            opts[i].step(nets[i].parameters(), g[i].parameters())
    resumed = make_optimizer("adam", lr=0.01, amsgrad=True)
    resumed.load_state_dict(opts[1].state_dict())
    opts[1] = resumed
    for s in range(48, 96, 16):
        for i in range(2):
            _, g[i] = nets[i].batch_loss_and_grads(X[s : s + 16], y[s : s + 16], out=g[i])
            opts[i].step(nets[i].parameters(), g[i].parameters())
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- benchmark


def run_speed(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "speed.json"
    md = tmp_path / "speed.md"
    proc = subprocess.run(
        [sys.executable, str(SPEED), "--quick", "--out", str(out), "--md", str(md), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| target (issue 7) |" in md.read_text()
    return json.loads(out.read_text())


def test_speed_benchmark_starts_and_reports(tmp_path: Path) -> None:
    """A few seconds: digits with mlpx alone, no MLflow, no start-up timing."""
    report = run_speed(
        tmp_path, "--problems", "b", "--peers", "mlpx", "--no-tracking", "--no-startup"
    )
    for key in ("command", "machine", "load_before", "load_after", "config", "results"):
        assert key in report, key
    row = report["results"]["b"]["float64"]["mlpx"]
    for key in ("seconds_per_epoch", "seconds_total", "samples_per_second", "gflops"):
        assert row[key] > 0, key
    assert report["memory"]["b"]["float64"]["mlpx"]["peak_rss_bytes"] > 0
    assert isinstance(report["targets"], list)


@pytest.mark.slow
def test_speed_benchmark_quick_run_has_every_section(tmp_path: Path) -> None:
    report = run_speed(tmp_path)
    peers = report["config"]["peers"]
    assert "mlpx" in peers and "sklearn" in peers
    for dtype in ("float32", "float64"):
        tools = report["results"]["a"][dtype]
        assert set(peers) <= set(tools)
        assert tools["mlpx"]["fraction_of_layer_ceiling"] > 0
        assert report["gemm"][dtype]["layer_gflops"] > 0
    assert set(peers) <= set(report["results"]["b"]["float64"])
    assert "sklearn" in report["results"]["b"]["float64"]
    assert report["results"]["b"]["float64"]["sklearn"]["mlpx_ratio"] > 0
    if "tracking" not in report["skipped"]:
        assert report["tracking"]["every_1"]["every"] == 1
    assert report["startup"]["seconds"] > 0
    names = [row["target"] for row in report["targets"]]
    assert any("mlpx --help" in name for name in names)
    assert any("(b) float64: mlpx time / sklearn" in name for name in names)

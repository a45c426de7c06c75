"""train.fit: metrics and their cadence, early stopping, divergence, determinism."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MemoryTracker
from mlpx.train import DivergenceError, EarlyStopping, TrainerSettings, fit


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


def run(data, cfg: TrainerSettings, lr: float = 0.01, name: str = "adam", **kw):
    rng = np.random.default_rng(cfg.seed)
    net = MLP([data.n_features, 16, data.n_classes], "tanh", rng=rng)
    tracker = MemoryTracker()
    opt = make_optimizer(name, lr=lr)
    return net, tracker, fit(net, opt, data, cfg, tracker, rng=rng, **kw)


BASE = TrainerSettings(
    epochs=6, batch_size=16, log_every_n_steps=3, early_stopping=EarlyStopping(patience=0)
)


def test_metric_keys_steps_and_cadence(iris) -> None:
    _, tracker, result = run(iris, BASE)
    steps_per_epoch = math.ceil(iris.X_train.shape[0] / 16)
    assert result.steps == 6 * steps_per_epoch
    m = tracker.metrics
    assert [s for s, _ in m["epoch"]] == [steps_per_epoch * e for e in range(1, 7)]
    for key in ["train/accuracy", "val/loss", "val/accuracy", "lr"]:
        assert len(m[key]) == 6, key
    per_step = [s for s, _ in m["grad_norm/layer_1"]]
    assert per_step == list(range(3, result.steps + 1, 3))
    for key in ["grad_norm/layer_2", "grad_norm/global"]:
        assert len(m[key]) == len(per_step)
    # train/loss: the epoch means only; train/loss_window: every 3 steps (one series each)
    assert [s for s, _ in m["train/loss"]] == [s for s, _ in m["epoch"]]
    assert [s for s, _ in m["train/loss_window"]] == per_step
    assert set(m) >= {"test/loss", "test/accuracy"}
    g1 = dict(m["grad_norm/layer_1"])
    g2 = dict(m["grad_norm/layer_2"])
    glob = dict(m["grad_norm/global"])
    assert all(glob[s] >= math.hypot(g1[s], g2[s]) - 1e-12 for s in glob)  # biases add to it
    assert result.objective == m["val/accuracy"][-1][1]
    assert m["val/loss"][-1][1] < m["val/loss"][0][1]


def test_grad_norm_is_the_frobenius_norm_of_delta_w(iris) -> None:
    cfg = replace(BASE, epochs=1, log_every_n_steps=1, shuffle=False)
    rng = np.random.default_rng(0)
    net = MLP([iris.n_features, 16, iris.n_classes], "tanh", rng=rng)
    first = net.loss_and_grads(iris.X_train[:16], iris.y_train[:16])[1]
    expected = [float(np.linalg.norm(dW)) for dW in first.weights]
    tracker = MemoryTracker()
    fit(net, make_optimizer("sgd", lr=0.1), iris, cfg, tracker, rng=rng)
    got = [tracker.metrics[f"grad_norm/layer_{l}"][0][1] for l in (1, 2)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_same_seed_same_metrics_different_seed_different(iris) -> None:
    _, a, _ = run(iris, BASE)
    _, b, _ = run(iris, BASE)
    _, c, _ = run(iris, replace(BASE, seed=1))
    assert a.metrics == b.metrics
    assert a.metrics["train/loss"] != c.metrics["train/loss"]


def test_early_stopping_stops_and_restores_the_best_weights(iris) -> None:
    es = EarlyStopping(patience=2, monitor="val/loss", restore_best=True)
    cfg = replace(BASE, epochs=200, early_stopping=es)
    net, tracker, result = run(iris, cfg, lr=0.05)
    assert result.stopped_early and result.epochs_run < 200
    val = [v for _, v in tracker.metrics["val/loss"]]
    best = int(np.argmin(val))
    assert result.best_epoch == best + 1
    assert result.epochs_run == result.best_epoch + 2  # patience 2
    X_val = net.check_inputs(iris.X_val)
    assert net.evaluate(X_val, iris.y_val)[0] == pytest.approx(val[best], rel=1e-12)


def test_divergence_stops_with_a_clear_message(iris) -> None:
    rng = np.random.default_rng(0)
    net = MLP([iris.n_features, 64, 64, iris.n_classes], "relu", rng=rng)
    with pytest.raises(DivergenceError, match=r"training diverged at epoch \d+, step \d+: .*lr"):
        fit(net, make_optimizer("sgd", lr=1e9), iris, BASE, MemoryTracker(), rng=rng)


def test_objective_can_be_a_test_metric(iris) -> None:
    _, tracker, result = run(iris, replace(BASE, objective="test/loss", direction="minimize"))
    assert result.objective == tracker.metrics["test/loss"][0][1]


def test_gradient_clipping_bounds_every_step(iris) -> None:
    cfg = replace(BASE, epochs=1)

    def moved(clip_norm):
        rng = np.random.default_rng(0)
        net = MLP([iris.n_features, 16, iris.n_classes], "tanh", rng=rng)
        before = [p.copy() for p in net.parameters()]
        result = fit(net, make_optimizer("sgd", lr=0.5), iris, cfg, rng=rng, clip_norm=clip_norm)
        after = net.parameters()
        distance = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before)))
        return distance, result.steps

    free, steps = moved(None)
    clipped, _ = moved(1e-3)
    assert clipped <= 0.5 * 1e-3 * steps * (1 + 1e-9)  # each step at most lr * clip_norm
    assert free > 100 * clipped

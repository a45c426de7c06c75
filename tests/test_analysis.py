"""mlpx.analysis: the gradient check, health metrics, sanity checks, input gradients, figures."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from mlpx.analysis import health, inputs, log, plots, sanity
from mlpx.analysis.gradcheck import QUANTITIES, GradcheckReport, gradcheck, has_kink
from mlpx.analysis.health import saturated, tail_limits
from mlpx.data import load_dataset
from mlpx.nn.activations import ACTIVATIONS
from mlpx.nn.losses import softmax
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MemoryTracker
from mlpx.train import EarlyStopping, TrainerSettings, fit

CONF = Path(__file__).resolve().parent.parent / "conf"


def toy(sizes, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    """A [64, 32, 10] relu network trained on digits for 15 epochs (~0.2 s)."""
    rng = np.random.default_rng(0)
    net = MLP([64, 32, 10], "relu", rng=rng)
    cfg = TrainerSettings(
        epochs=15, batch_size=64, progress="false", early_stopping=EarlyStopping(patience=0)
    )
    fit(net, make_optimizer("adam", lr=3e-3), digits, cfg, rng=rng)
    return net


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "silu"])
def test_gradcheck_passes_on_the_hand_written_backprop(act: str) -> None:
    sizes = [5, 7, 6, 3]
    X, y = toy(sizes)
    report = gradcheck(MLP(sizes, act, seed=1), X, y)
    assert report.ok(1e-6), report.to_markdown(1e-6)
    L = len(sizes) - 1
    assert len(report.rows) == 4 * L + 1
    assert {(r["layer"], r["quantity"]) for r in report.rows} == {
        (l, q) for l in range(1, L + 1) for q in QUANTITIES[:4]
    } | {(0, "delta_x")}
    for r in report.rows:  # no sub-sampling: every entry checked
        assert r["checked"] == r["total"] == math.prod(r["shape"])


def test_gradcheck_fails_on_a_wrong_derivative(monkeypatch) -> None:
    tanh = ACTIVATIONS["tanh"]

    def wrong_grad(a, f, xp):
        return 1.1 * (1.0 - f * f)

    def wrong_delta(df, a, f, xp):
        return df * wrong_grad(a, f, xp)

    wrong = dataclasses.replace(tanh, grad=wrong_grad, delta=wrong_delta)
    monkeypatch.setitem(ACTIVATIONS, "tanh", wrong)
    sizes = [5, 6, 4, 3]
    X, y = toy(sizes)
    report = gradcheck(MLP(sizes, "tanh", seed=0), X, y)
    assert not report.ok(1e-6)
    assert 0.01 < report.max_error < 0.2  # 10% off gives ~0.05
    err = {(r["layer"], r["quantity"]): r["rel_error"] for r in report.rows}
    # The table points at phi_2': delta_f_2 (from layer 3) is right, delta_a_2 is not.
    assert err[(2, "delta_f")] < 1e-6 and err[(3, "delta_W")] < 1e-6
    assert err[(2, "delta_a")] > 1e-2 and err[(2, "delta_W")] > 1e-2
    assert err[(0, "delta_x")] > 1e-2
    assert "**NO**" in report.to_markdown(1e-6) and "FAIL" in report.to_markdown(1e-6)


def test_gradcheck_counts_and_skips_relu_kinks() -> None:
    sizes = [3, 4, 2]
    X, y = toy(sizes, n=2, seed=3)
    net = MLP(sizes, "relu", seed=0)
    b = net.biases[0].copy()
    b[0] = 1e-9 - X[0] @ net.weights[0][0]  # a_1[0, 0] = 1e-9: eps = 1e-6 crosses it
    net.biases[0] = b
    report = gradcheck(net, X, y)
    kinks = {(r["layer"], r["quantity"]): r["kinks"] for r in report.rows}
    assert kinks[(1, "delta_W")] >= 1 and kinks[(1, "delta_b")] == 1
    assert kinks[(1, "delta_a")] == 1 and kinks[(0, "delta_x")] >= 1
    assert kinks[(2, "delta_W")] == 0
    assert report.kinks == sum(kinks.values())
    assert report.ok(1e-6), report.to_markdown()  # the crossings are left out of the error
    assert has_kink(ACTIVATIONS["relu"]) and has_kink(ACTIVATIONS["leaky_relu"])
    assert not any(has_kink(ACTIVATIONS[n]) for n in ("elu", "gelu", "tanh", "silu", "linear"))


def test_gradcheck_report_api_subsampling_and_no_side_effects(digits) -> None:
    net = MLP([64, 128, 64, 10], "relu", seed=0, dtype="float32")
    before = [w.copy() for w in net.parameters()]
    X, y = digits.X_train[:8], digits.y_train[:8]
    report = gradcheck(net, X, y, max_params_per_layer=50, rng=1)
    again = gradcheck(net, X, y, max_params_per_layer=50, rng=1)
    assert report.rows == again.rows  # seeded sub-sampling
    assert isinstance(report, GradcheckReport) and report.ok(1e-6)
    assert all(r["checked"] == min(50, r["total"]) for r in report.rows)
    assert report.max_error == max(r["rel_error"] for r in report.rows)
    assert all(np.array_equal(p, q) for p, q in zip(before, net.parameters()))
    assert net.dtype == "float32"
    table = report.to_markdown(1e-6)
    assert table.startswith("| layer | quantity |") and "PASS" in table
    assert len(table.splitlines()) == 2 + 13 + 2
    metrics = report.metrics()
    assert metrics["gradcheck/max_rel_error"] == report.max_error
    assert "gradcheck/delta_W/layer_1" in metrics and "gradcheck/delta_x" in metrics
    assert "max_error" in repr(report)
    only = gradcheck(net, X, y, max_params_per_layer=10, quantities=("delta_W",))
    assert [r["quantity"] for r in only.rows] == ["delta_W"] * 3
    with pytest.raises(ValueError, match="quantities"):
        gradcheck(net, X, y, quantities=("delta_z",))
    with pytest.raises(ValueError, match="max_params_per_layer"):
        gradcheck(net, X, y, max_params_per_layer=0)
    assert not GradcheckReport(rows=[{"rel_error": math.nan, "kinks": 0}]).ok()


@pytest.mark.parametrize("backend", ["torch", "array_api_strict"])
def test_gradcheck_runs_the_backend_backward(backend: str) -> None:
    pytest.importorskip(backend)
    sizes = [4, 5, 3]
    X, y = toy(sizes)
    net = MLP(sizes, "tanh", seed=0, backend=backend, dtype="float32")
    report = gradcheck(net, X, y)
    assert report.backend == backend
    assert report.ok(1e-6), report.to_markdown()


# --------------------------------------------------------------------------- health metrics


def _tiny_net() -> tuple[MLP, np.ndarray, np.ndarray]:
    net = MLP([3, 4, 3, 2], ["relu", "tanh", "linear"], seed=0)
    b1 = net.biases[0].copy()
    b1[0] = -100.0  # unit 1 of layer 1: inactive on every sample
    net.biases[0] = b1
    W2 = net.weights[1].copy()
    W2[0] *= 50.0  # unit 1 of layer 2: tanh pushed into its tails
    net.weights[1] = W2
    X, y = toy([3, 2], n=5, seed=2)
    return net, X, y


def test_health_metrics_match_a_hand_computation() -> None:
    net, X, y = _tiny_net()
    W1, W2, W3 = (w.copy() for w in net.weights)
    b1, b2, b3 = (b.copy() for b in net.biases)
    # forward and backward by hand
    a1 = X @ W1.T + b1
    f1 = np.maximum(a1, 0)
    a2 = f1 @ W2.T + b2
    f2 = np.tanh(a2)
    a3 = f2 @ W3.T + b3
    Y = np.eye(2)[y]
    da3 = (softmax(a3) - Y) / len(y)
    da2 = (da3 @ W3) * (1 - f2**2)
    da1 = (da2 @ W2) * (a1 > 0)

    _, g = net.loss_and_grads(X, y)
    snap = health.weight_snapshot(net)
    make_optimizer("sgd", lr=0.1).step(net.parameters(), g.parameters())
    m = health.health_metrics(net, g, before=snap)

    W_after = [W1 - 0.1 * da1.T @ X, W2 - 0.1 * da2.T @ f1, W3 - 0.1 * da3.T @ f2]
    for l, (W0, W, da, f) in enumerate(
        zip([W1, W2, W3], W_after, [da1, da2, da3], [f1, f2, a3]), start=1
    ):
        assert m[f"health/weight_norm/layer_{l}"] == pytest.approx(np.linalg.norm(W))
        ratio = np.linalg.norm(W - W0) / np.linalg.norm(W0)
        assert m[f"health/update_ratio/layer_{l}"] == pytest.approx(ratio)
        assert m[f"health/delta_a_norm/layer_{l}"] == pytest.approx(np.linalg.norm(da))
        assert m[f"health/activation_mean/layer_{l}"] == pytest.approx(f.mean())
        assert m[f"health/activation_std/layer_{l}"] == pytest.approx(f.std())
    dead = np.mean(np.all(a1 <= 0, axis=0))
    assert dead == 0.25  # the setup: exactly unit 1 is dead
    assert m["health/dead_units/layer_1"] == dead
    saturated = np.mean(np.abs(f2) > 0.99)
    assert 0 < saturated < 1
    assert m["health/saturated_units/layer_2"] == pytest.approx(saturated)
    # relu-like layers get dead_units, saturating ones saturated_units, linear neither
    assert "health/saturated_units/layer_1" not in m and "health/dead_units/layer_2" not in m
    assert not any(k.endswith("layer_3") and k.startswith(("dead", "saturated")) for k in m)
    assert all(isinstance(v, float) for v in m.values())


def test_health_metrics_sigmoid_saturation_and_optional_parts() -> None:
    net = MLP([3, 5, 2], ["sigmoid", "linear"], seed=0)
    net.weights[0] = net.weights[0] * 20.0
    X, _ = toy([3, 2], n=7, seed=4)
    net.forward(X)
    f = 1 / (1 + np.exp(-(X @ net.weights[0].T + net.biases[0])))
    m = health.health_metrics(net)  # no gradients, no snapshot: those keys are left out
    expected = np.mean((f < 0.01) | (f > 0.99))
    assert 0 < expected < 1
    assert m["health/saturated_units/layer_1"] == pytest.approx(expected)
    assert not any(k.startswith(("update_ratio", "delta_a_norm")) for k in m)
    with pytest.raises(RuntimeError, match="forward"):
        health.health_metrics(MLP([3, 2], seed=0))


def test_fit_logs_health_metrics_of_the_step_batch(digits) -> None:
    """One full-batch step: the logged statistics are those of f_l on the whole training
    split under the initial weights (the cache of the step's own forward pass, whichever
    step implementation ran), the norms those of the updated weights."""
    sizes = [64, 16, 10]
    net = MLP(sizes, "tanh", seed=3)
    W0 = [w.copy() for w in net.weights]
    b0 = [b.copy() for b in net.biases]
    X = digits.X_train
    cfg = TrainerSettings(
        epochs=1, batch_size=X.shape[0], log_every_n_steps=1, progress="false", shuffle=False
    )
    tracker = MemoryTracker()
    fit(net, make_optimizer("sgd", lr=0.5), digits, cfg, tracker, health_metrics=True)
    logged = {k: v[0] for k, v in tracker.metrics.items() if "/layer_" in k}
    f1 = np.tanh(X @ W0[0].T + b0[0])
    f2 = f1 @ W0[1].T + b0[1]
    assert logged["health/activation_mean/layer_1"] == (1, pytest.approx(f1.mean()))
    assert logged["health/activation_std/layer_2"] == (1, pytest.approx(f2.std()))
    saturated = np.mean(np.abs(f1) > 0.99)
    assert logged["health/saturated_units/layer_1"] == (1, pytest.approx(saturated))
    for l in (1, 2):
        W, W_before = net.weights[l - 1], W0[l - 1]
        assert logged[f"health/weight_norm/layer_{l}"][1] == pytest.approx(np.linalg.norm(W))
        ratio = np.linalg.norm(W - W_before) / np.linalg.norm(W_before)
        assert logged[f"health/update_ratio/layer_{l}"][1] == pytest.approx(ratio)
        assert logged[f"health/delta_a_norm/layer_{l}"][1] > 0


def test_saturation_is_read_off_the_activation() -> None:
    assert tail_limits(ACTIVATIONS["tanh"]) == (-1.0, 1.0)
    assert tail_limits(ACTIVATIONS["sigmoid"]) == (0.0, 1.0)
    lo, hi = tail_limits(ACTIVATIONS["relu"])
    assert lo == 0.0 and math.isnan(hi)
    assert all(math.isnan(v) for v in tail_limits(ACTIVATIONS["linear"]))
    f = np.array([[-0.995, -0.5, 0.0, 0.989, 0.9901]])
    mask = saturated(ACTIVATIONS["tanh"], np.arctanh(f), f, np)
    assert mask.tolist() == [[True, False, False, False, True]]


def test_health_metrics_on_another_backend() -> None:
    pytest.importorskip("array_api_strict")
    net, X, y = _tiny_net()
    strict = MLP(net.sizes, net.activations, seed=1, backend="array_api_strict")
    strict.weights, strict.biases = list(net.weights), list(net.biases)
    _, g = net.loss_and_grads(X, y)
    _, gs = strict.loss_and_grads(X, y)
    ref, got = health.health_metrics(net, g), health.health_metrics(strict, gs)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k]), k


# --------------------------------------------------------------------------- sanity checks


def test_sanity_checks_pass_on_a_fresh_net_and_leave_it_alone(digits) -> None:
    rng = np.random.default_rng(0)
    net = MLP([64, 128, 64, 10], "relu", rng=rng)
    state = rng.bit_generator.state
    before = [p.copy() for p in net.parameters()]
    results = sanity.sanity_checks(net, digits.X_train, digits.y_train)
    assert [r.name for r in results] == ["initial_loss", "overfit"]
    assert all(r.passed for r in results), [str(r) for r in results]
    loss = results[0].numbers
    assert loss["expected"] == pytest.approx(math.log(10))
    assert abs(loss["loss"] - math.log(10)) <= 0.5 * math.log(10)
    assert results[1].numbers["accuracy"] == 1.0 and results[1].numbers["n_samples"] == 20
    assert 0 < results[1].numbers["steps"] <= 1000
    assert all(np.array_equal(p, q) for p, q in zip(before, net.parameters()))
    assert rng.bit_generator.state == state
    tags = results[1].tags()
    assert tags["sanity.overfit"] == "passed"
    assert float(tags["sanity.overfit.steps"]) == results[1].numbers["steps"]


def test_sanity_checks_fail_when_they_should(digits) -> None:
    X, y = digits.X_train, digits.y_train
    net = MLP([64, 32, 10], "relu", seed=0)
    stuck = sanity.overfit_check(
        net, X, y, max_steps=100, make_optimizer=lambda: make_optimizer("adam", lr=1e-8)
    )
    assert not stuck.passed and stuck.numbers["steps"] == 100
    assert stuck.numbers["accuracy"] < 1.0 and "cannot overfit" in str(stuck)
    loud = MLP([64, 32, 10], "relu", init="normal", init_std=3.0, seed=0)
    check = sanity.initial_loss_check(loud, X, y)
    assert not check.passed and check.numbers["loss"] > 1.5 * math.log(10)
    assert "FAIL" in str(check)


# --------------------------------------------------------------------------- input gradients


def test_input_gradients_are_per_sample_and_match_finite_differences(trained, digits) -> None:
    X, y = digits.X_test[:5], digits.y_test[:5]
    dx = inputs.input_gradients(trained, X, y)
    assert np.allclose(dx, inputs.input_gradients(trained, X, y, batch_size=2))
    i, j, h = 2, 37, 1e-6

    def loss_i(x):
        return trained.loss(x[None, :], y[i : i + 1])

    e = np.zeros(64)
    e[j] = h
    num = (loss_i(X[i] + e) - loss_i(X[i] - e)) / (2 * h)
    assert dx[i, j] == pytest.approx(num, rel=1e-5, abs=1e-9)
    assert np.array_equal(inputs.saliency(trained, X, y), np.abs(dx))


def test_fgsm_accuracy_decreases_with_epsilon(trained, digits) -> None:
    X, y = digits.X_test, digits.y_test
    eps = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    acc = inputs.fgsm_accuracy(trained, X, y, eps)
    assert list(acc) == eps
    assert acc[0.0] == pytest.approx(trained.evaluate(X, y)[1])
    values = list(acc.values())
    assert all(a >= b for a, b in itertools.pairwise(values)), acc
    assert values[-1] < values[0] - 0.3
    assert inputs.adversarial_metrics(acc)["adversarial/accuracy_eps_0.05"] == acc[0.05]
    X_adv = inputs.fgsm(trained, X, y, 0.1)
    assert np.allclose(np.abs(X_adv - X), 0.1)
    lo, hi = X.min(axis=0), X.max(axis=0)
    clipped = inputs.fgsm(trained, X, y, 0.3, clip=(lo, hi))
    assert np.all(clipped >= lo - 1e-12) and np.all(clipped <= hi + 1e-12)


def test_class_visualisation_raises_the_logit_within_the_bound(trained) -> None:
    images = inputs.class_visualisation(trained, steps=60, lr=0.1, norm_bound=5.0)
    assert images.shape == (10, 64)
    assert np.all(np.linalg.norm(images, axis=1) <= 5.0 + 1e-9)
    start = trained.forward(np.zeros((1, 64)))[0]
    logits = trained.forward(images)
    assert np.all(np.diag(logits) > start + 1.0)
    assert np.array_equal(np.argmax(logits, axis=1), np.arange(10))
    two = inputs.class_visualisation(trained, steps=5, classes=[3, 7])
    assert two.shape == (2, 64)
    assert np.linalg.norm(two, axis=1).max() <= math.sqrt(64) + 1e-9  # default bound sqrt(d)
    with pytest.raises(ValueError, match="norm_bound"):
        inputs.class_visualisation(trained, norm_bound=-1.0)


# --------------------------------------------------------------------------- figures


def _history() -> dict[str, list[tuple[int, float]]]:
    # 3 epochs of 10 steps; grad norms logged every 4 steps (epoch 2 gets only step 12 ...)
    h: dict[str, list[tuple[int, float]]] = {"epoch": [(10, 1.0), (20, 2.0), (30, 3.0)]}
    for layer in (1, 2):
        h[f"grad_norm/layer_{layer}"] = [(s, 10.0 ** (-layer) * s) for s in (4, 8, 12, 16, 24)]
    return h


def test_grad_norm_heatmap_maps_steps_to_epochs() -> None:
    fig = plots.grad_norm_heatmap(_history())
    ax, cbar = fig.axes
    grid = np.asarray(ax.get_images()[0].get_array())
    assert grid.shape == (2, 3)
    expected_1 = np.log10([np.mean([0.4, 0.8]), np.mean([1.2, 1.6]), 2.4])
    assert np.allclose(grid[0], expected_1)
    assert np.allclose(grid[1], expected_1 - 1)
    assert ax.get_xlabel() == "epoch" and cbar.get_ylabel().startswith("log10")
    gaps = _history()
    gaps["grad_norm/layer_1"] = [(4, 1.0), (24, 100.0)]  # epoch 2: nothing logged
    gaps_grid = np.asarray(plots.grad_norm_heatmap(gaps).axes[0].get_images()[0].get_array())
    assert gaps_grid[0, 1] == pytest.approx(1.0)  # interpolated between log10 1 and 2
    assert len(plots.grad_norm_heatmap({}).axes) == 1


def test_analysis_figures_have_the_expected_axes(trained, digits) -> None:
    from matplotlib.figure import Figure

    X, y = digits.X_test[:20], digits.y_test[:20]
    pred = trained.predict(X)
    cm = plots.confusion_matrix(y, pred, digits.class_names)
    assert isinstance(cm, Figure) and len(cm.axes) == 2
    counts = np.asarray(cm.axes[0].get_images()[0].get_array())
    assert counts.shape == (10, 10) and counts.sum() == 20
    assert np.trace(counts) == np.sum(pred == y)
    assert len(plots.confusion_matrix([0, 1, 1], [0, 1, 0], normalize=True).axes) == 2

    hist = plots.activation_histograms(trained, X)
    assert len(hist.axes) == 2
    assert [ax.get_title().split(",")[0] for ax in hist.axes] == [
        "layer 1 (relu)",
        "layer 2 (linear)",
    ]

    sal = inputs.saliency(trained, X[:4], y[:4])
    fig = plots.saliency_figure(
        X, sal, (8, 8), labels=y, max_images=4, mean=digits.mean, scale=digits.scale
    )
    top, bottom = fig.axes  # one row of tiles each: 4 tiles of 8x8 with 1-pixel gaps
    assert top.get_images()[0].get_array().shape == (8, 4 * 9 - 1)
    assert bottom.get_images()[0].get_cmap().name.startswith("hot")
    assert [t.get_text() for t in top.texts] == [f"label {c}" for c in y[:4]]

    X_adv = inputs.fgsm(trained, X, y, 0.5)
    fig = plots.adversarial_figure(X, X_adv, y, pred, trained.predict(X_adv), (8, 8), max_images=3)
    clean, adv, delta = fig.axes
    assert delta.get_images()[0].get_array().shape == (8, 3 * 9 - 1)
    before = [t.get_text().split(" -> ") for t in clean.texts]  # flipped: right when clean
    after = [t.get_text().removeprefix("-> ") for t in adv.texts]  # ... and wrong when attacked
    assert len(before) == len(after) == 3
    assert all(
        true == clean_pred != adv_pred for (true, clean_pred), adv_pred in zip(before, after)
    )

    images = inputs.class_visualisation(trained, steps=3)
    (ax,) = plots.class_visualisation_figure(images, (8, 8)).axes
    assert [t.get_text() for t in ax.texts] == [str(c) for c in range(10)]
    many = plots.class_visualisation_figure(np.zeros((12, 64)), (8, 8))  # wraps at 10 a row
    assert many.axes[0].get_images()[0].get_array().shape == (2 * 9 - 1, 10 * 9 - 1)


def test_decision_boundary_for_2d_data_only() -> None:
    moons = load_dataset("moons", n_samples=200, seed=0)
    net = MLP([2, 8, 2], "tanh", seed=0)
    fig = plots.decision_boundary(net, moons.X_train, moons.y_train, resolution=50)
    (ax,) = fig.axes
    assert len(ax.collections) >= 2  # the filled contours and the points
    with pytest.raises(ValueError, match="2-D"):
        plots.decision_boundary(MLP([3, 2], seed=0), np.zeros((4, 3)), np.zeros(4))


def test_log_analyses_logs_every_figure_and_metric(trained, digits) -> None:
    tracker = MemoryTracker()
    metrics = log.log_analyses(
        tracker,
        trained,
        digits,
        history=_history(),
        step=7,
        adversarial_epsilons=[0.0, 0.1],
        class_images={"steps": 5},
    )
    assert set(metrics) == {"adversarial/accuracy_eps_0", "adversarial/accuracy_eps_0.1"}
    assert tracker.metrics["adversarial/accuracy_eps_0.1"][0][0] == 7
    assert sorted(tracker.figures) == [
        "figures/activation_histograms.png",
        "figures/adversarial.png",
        "figures/class_visualisation.png",
        "figures/confusion_matrix.png",
        "figures/grad_norm_heatmap.png",
        "figures/saliency.png",
    ]
    quiet = MemoryTracker()
    log.log_analyses(quiet, trained, digits, adversarial_epsilons=[0.1], draw=False)
    assert quiet.figures == [] and list(quiet.metrics) == ["adversarial/accuracy_eps_0.1"]

    moons = load_dataset("moons", n_samples=200, seed=0)
    two_d = MemoryTracker()
    log.log_analyses(two_d, MLP([2, 8, 2], "tanh", seed=0), moons, adversarial_epsilons=None)
    assert sorted(two_d.figures) == [
        "figures/activation_histograms.png",
        "figures/confusion_matrix.png",
        "figures/decision_boundary.png",
    ]
    assert two_d.metrics == {}


def test_log_sanity_checks_and_gradcheck() -> None:
    sizes = [4, 5, 3]
    X, y = toy(sizes, n=30)
    net = MLP(sizes, "tanh", seed=0)
    tracker = MemoryTracker()
    log.log_sanity_checks(tracker, sanity.sanity_checks(net, X, y), step=0)
    assert tracker.tags["sanity.initial_loss"] == "passed"
    assert not any(k.startswith("sanity") for k in tracker.metrics)  # tags, not metrics
    assert "overfit: pass" in tracker.texts["sanity_checks.txt"]
    log.log_gradcheck(tracker, gradcheck(net, X[:4], y[:4]), 1e-6)
    assert tracker.metrics["gradcheck/max_rel_error"][0][1] < 1e-6
    assert "PASS" in tracker.texts["gradcheck/report.md"]


# --------------------------------------------------------------------------- config


def test_analysis_config_files() -> None:
    from omegaconf import OmegaConf

    default = OmegaConf.to_container(OmegaConf.load(CONF / "analysis" / "default.yaml"))
    off = OmegaConf.to_container(OmegaConf.load(CONF / "analysis" / "off.yaml"))

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    assert keys(default) == keys(off)
    assert default["health_metrics"] and default["sanity_checks"]["enabled"]
    assert not off["health_metrics"] and not off["figures"] and not off["saliency"]
    assert not off["sanity_checks"]["enabled"] and not off["adversarial"]["enabled"]
    assert not off["class_visualisation"]["enabled"]
    assert off["gradcheck"] == default["gradcheck"]
    full = OmegaConf.to_container(OmegaConf.load(CONF / "analysis" / "full.yaml"))
    assert keys(full) == keys(default)  # full: every analysis on, the rest as the default
    assert full["saliency"] and full["figures"] and full["health_metrics"]
    assert full["adversarial"]["enabled"] and full["class_visualisation"]["enabled"]
    assert full["sanity_checks"] == default["sanity_checks"]
    for name in ("default", "full", "off"):
        first = (CONF / "analysis" / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith("# ") and len(first) <= 120

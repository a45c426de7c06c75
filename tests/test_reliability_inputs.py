"""FGSM stays in the attack's box (issue 19, case 14), against an independent computation:
the input gradient from PyTorch autograd and the feasible interval worked out per element."""

from __future__ import annotations

import numpy as np
import pytest

from mlpx.analysis import inputs
from mlpx.nn.model import MLP


def _torch_sign(net: MLP, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sign(d loss / dx) by autograd: tanh hidden layers, linear output, mean cross-entropy."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, requires_grad=True)
    f = x
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        f = f @ torch.tensor(W).T + torch.tensor(b)
        if i < net.num_layers - 1:
            f = torch.tanh(f)
    torch.nn.functional.cross_entropy(f, torch.tensor(y)).backward()
    return np.sign(x.grad.numpy())


def _expected(X, sign, eps, lo, hi):
    """Per element: the interval [max(x - eps, lo), min(x + eps, hi)] if it is not empty
    (x + eps sign clipped into it), else the end of the eps-box nearest the data range."""
    out = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        x, s = X[idx], sign[idx]
        low, high = x - eps, x + eps
        if lo is not None:
            a, b = max(low, lo[idx[1]]), min(high, hi[idx[1]])
            if a <= b:
                low, high = a, b
            else:  # the data range lies wholly on one side of the box
                low = high = low if hi[idx[1]] < x - eps else high
        out[idx] = min(max(x + eps * s, low), high)
    return out


@pytest.fixture()
def case():
    rng = np.random.default_rng(0)
    net = MLP([4, 6, 3], "tanh", seed=1)
    X_train = rng.normal(size=(50, 4))
    lo, hi = X_train.min(axis=0), X_train.max(axis=0)
    X = rng.normal(size=(8, 4))
    X[0] = hi + 20.0  # a test row far outside the training range
    X[1] = lo - 0.05  # just outside it
    y = rng.integers(0, 3, size=8)
    return net, X, y, lo, hi


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.1, 0.5])
def test_fgsm_stays_in_the_eps_box_and_the_data_range(case, eps) -> None:
    net, X, y, lo, hi = case
    sign = _torch_sign(net, X, y)
    got = inputs.fgsm(net, X, y, eps, clip=(lo, hi))
    np.testing.assert_allclose(got, _expected(X, sign, eps, lo, hi), rtol=0, atol=1e-12)
    assert np.all(np.abs(got - X) <= eps + 1e-12)  # the box always holds
    unclipped = inputs.fgsm(net, X, y, eps)
    np.testing.assert_allclose(unclipped, X + eps * sign, rtol=0, atol=1e-12)


def test_eps_zero_returns_the_input_unchanged(case) -> None:
    net, X, y, lo, hi = case
    np.testing.assert_array_equal(inputs.fgsm(net, X, y, 0.0, clip=(lo, hi)), X)
    clean = net.evaluate(X, y)[1]
    assert inputs.fgsm_accuracy(net, X, y, [0.0], clip=(lo, hi)) == {0.0: clean}


def test_fgsm_rejects_a_bad_epsilon(case) -> None:
    net, X, y, _, _ = case
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="epsilon must be a non-negative finite number"):
            inputs.fgsm(net, X, y, bad)

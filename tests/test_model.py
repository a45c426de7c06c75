"""The lecture's MLP: every delta against finite differences and PyTorch autograd."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

from mlpx import ACTIVATIONS, INITIALIZERS, MLP, delta_f_jacobian_chain
from mlpx.nn.losses import softmax_cross_entropy
from tests.conftest import WORST

ALL_ACTIVATIONS = sorted(ACTIVATIONS)
ARCHITECTURES = [[5, 3], [5, 7, 3], [4, 6, 5, 3], [3, 4, 5, 4, 2]]


def rel_error(num: np.ndarray, ana: np.ndarray) -> float:
    """||num - ana|| / (||num|| + ||ana||): 0 when equal, 1 when unrelated."""
    den = np.linalg.norm(num) + np.linalg.norm(ana)
    return float(np.linalg.norm(num - ana) / den) if den > 0 else 0.0


def data(sizes: list[int], n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def loss_from(net: MLP, i: int, value: np.ndarray, kind: str, y: np.ndarray) -> float:
    """The loss computed onwards from a_(i+1) (kind "a") or f_i (kind "f"), i = l - 1."""
    f = ACTIVATIONS[net.activations[i]].forward(value, np) if kind == "a" else value
    start = i + 1 if kind == "a" else i
    for W, b, name in zip(net.weights[start:], net.biases[start:], net.activations[start:]):
        f = ACTIVATIONS[name].forward(f @ W.T + b, np)
    return softmax_cross_entropy(f, y)[0]


def central_diff(fun, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Centered finite differences of scalar ``fun()`` in every entry of ``x`` (in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        up = fun()
        x[idx] = old - h
        down = fun()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def forward_cache(net: MLP, X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """a_l and f_l (l = 1..L), recomputed independently of the network's cache."""
    a_list, f_list, f = [], [X], X
    for W, b, name in zip(net.weights, net.biases, net.activations):
        a = f @ W.T + b
        f = ACTIVATIONS[name].forward(a, np)
        a_list.append(a)
        f_list.append(f)
    return a_list, f_list


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=lambda s: "x".join(map(str, s)))
def test_every_delta_matches_finite_differences(activation: str, sizes: list[int]) -> None:
    acts = [activation] * (len(sizes) - 1)  # the output layer too: its delta_a is checked
    net = MLP(sizes, activations=acts, init="glorot_normal", seed=1)
    for b in net.biases:  # non-zero biases so db and the kinks are exercised
        b[:] = np.random.default_rng(2).normal(scale=0.3, size=b.shape)
    X, y = data(sizes)
    loss, g = net.loss_and_grads(X, y, input_grad=True)
    a_list, f_list = forward_cache(net, X)
    if ACTIVATIONS[activation].relu_like:
        # A centered difference across a kink is meaningless: keep |a| away from 0.
        assert min(np.abs(a).min() for a in a_list) > 1e-4

    def full_loss() -> float:
        return net.loss(X, y)

    checks = []
    for i in range(net.num_layers):
        checks.append((f"dW_{i + 1}", central_diff(full_loss, net.weights[i]), g.weights[i]))
        checks.append((f"db_{i + 1}", central_diff(full_loss, net.biases[i]), g.biases[i]))
        a = a_list[i].copy()
        num_da = central_diff(lambda a=a, i=i: loss_from(net, i, a, "a", y), a)
        checks.append((f"delta_a_{i + 1}", num_da, g.pre_activations[i]))
        f = f_list[i + 1].copy()
        num_df = central_diff(lambda f=f, i=i: loss_from(net, i + 1, f, "f", y), f)
        checks.append((f"delta_f_{i + 1}", num_df, g.activations[i]))
    checks.append(("delta_x", central_diff(full_loss, X), g.inputs))
    for name, num, ana in checks:
        assert ana.shape == num.shape, name
        err = rel_error(num, ana)
        WORST["finite_differences"] = max(WORST["finite_differences"], err)
        assert err < 1e-6, f"{name}: relative error {err:.2e}"
    assert loss == pytest.approx(net.loss(X, y))


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_activation_derivative_matches_finite_differences(name: str) -> None:
    act = ACTIVATIONS[name]
    a = np.linspace(-6, 6, 1201) + 1e-3  # no grid point on the kink at 0
    f = act.forward(a, np)
    h = 1e-6
    num = (act.forward(a + h, np) - act.forward(a - h, np)) / (2 * h)
    np.testing.assert_allclose(act.grad(a, f, np), num, rtol=1e-6, atol=1e-8)
    df = np.cos(a)  # any upstream delta: delta_a = delta_f * phi'(a)
    np.testing.assert_allclose(act.delta(df, a, f, np), df * num, rtol=1e-6, atol=1e-8)


def test_sigmoid_and_softplus_are_stable_at_large_inputs() -> None:
    a = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ACTIVATIONS["sigmoid"].forward(a, np)
        sp = ACTIVATIONS["softplus"].forward(a, np)
        e = ACTIVATIONS["elu"].forward(a, np)
        loss, df = softmax_cross_entropy(np.array([[1000.0, -1000.0, 0.0]]), np.array([1]))
    np.testing.assert_allclose(s, [0.0, 1.9287498479639178e-22, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(sp, [0.0, 1.9287498479639178e-22, np.log(2), 50.0, 1000.0])
    assert e[0] == -1.0 and e[-1] == 1000.0
    assert loss == pytest.approx(2000.0) and np.isfinite(df).all()


def test_shortcut_equals_the_jacobian_chain() -> None:
    rng = np.random.default_rng(3)
    logits, y = rng.normal(scale=3, size=(16, 7)), rng.integers(0, 7, size=16)
    _, shortcut = softmax_cross_entropy(logits, y)
    chain = delta_f_jacobian_chain(logits, y)
    np.testing.assert_allclose(shortcut, chain, rtol=1e-12, atol=1e-15)
    assert np.abs(shortcut).max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_all_linear_network_is_one_linear_map(depth: int) -> None:
    sizes = [6] + [9] * (depth - 1) + [4]
    net = MLP(sizes, activations=["linear"] * depth, seed=4)
    for b in net.biases:
        b[:] = np.random.default_rng(5).normal(size=b.shape)
    W, b = np.eye(6), np.zeros(6)
    for Wl, bl in zip(net.weights, net.biases):  # compose f -> W_l f + b_l
        W, b = Wl @ W, Wl @ b + bl
    X, _ = data(sizes, n=10)
    np.testing.assert_allclose(net.forward(X), X @ W.T + b, rtol=1e-12, atol=1e-12)
    assert W.shape == (4, 6)


def test_single_activation_name_makes_the_output_layer_linear() -> None:
    net = MLP([4, 8, 8, 3], activations="tanh")
    assert net.activations == ["tanh", "tanh", "linear"]
    assert "MLP(sizes=[4, 8, 8, 3], activations='tanh'" in repr(net)


def test_shapes_orientation_and_in_place_parameters() -> None:
    net = MLP([64, 128, 64, 10], activations=["relu", "tanh", "linear"], seed=0)
    assert [W.shape for W in net.weights] == [(128, 64), (64, 128), (10, 64)]
    assert [b.shape for b in net.biases] == [(128,), (64,), (10,)]
    params = net.parameters()
    assert params[0] is net.weights[0] and params[1] is net.biases[0] and len(params) == 6
    X, y = data([64, 10], n=5)
    _, g = net.loss_and_grads(X, y)
    assert g.inputs is None
    assert [p.shape for p in g.parameters()] == [p.shape for p in params]
    assert [d.shape for d in g.pre_activations] == [(5, 128), (5, 64), (5, 10)]
    assert [d.shape for d in g.activations] == [(5, 128), (5, 64), (5, 10)]
    assert net.predict(X).shape == (5,)
    np.testing.assert_allclose(net.predict_proba(X).sum(axis=1), 1.0)
    net.weights[2] = np.zeros((10, 64))  # assignable
    np.testing.assert_allclose(net.predict_proba(X), 0.1)


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_networks_and_gradients_pickle_and_deep_copy(activation: str) -> None:
    """An unpickled or deep-copied network computes the same logits and deltas; its
    activations are the registry's own objects (no lambdas, no module objects held)."""
    net = MLP([5, 7, 6, 3], activations=activation, seed=0)
    X, y = data([5, 3], n=8)
    loss, g = net.loss_and_grads(X, y, input_grad=True)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert other.activation_fns[0] is ACTIVATIONS[activation]
        assert repr(other) == repr(net)
        np.testing.assert_array_equal(other.forward(X), net.forward(X))
        loss2, g2 = other.loss_and_grads(X, y, input_grad=True)
        assert loss2 == loss
        for a, b in zip([*g.parameters(), g.inputs], [*g2.parameters(), g2.inputs]):
            np.testing.assert_array_equal(a, b)
    g3 = pickle.loads(pickle.dumps(g))
    for a, b in zip(g.parameters(), g3.parameters()):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_writes_into_the_arrays_an_optimizer_holds() -> None:
    net = MLP([5, 7, 3], seed=0)
    params = net.parameters()
    other = MLP([5, 7, 3], seed=1)
    net.load_state_dict(other.state_dict())
    assert all(p is q for p, q in zip(params, net.parameters()))
    for a, b in zip(net.parameters(), other.parameters()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="state is for sizes"):
        net.load_state_dict(MLP([5, 8, 3]).state_dict())


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_initialisers_are_seeded_and_scaled(init: str) -> None:
    a = MLP([300, 200, 10], init=init, seed=7)
    b = MLP([300, 200, 10], init=init, seed=7)
    c = MLP([300, 200, 10], init=init, seed=8)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0])
    expected = {
        "glorot_uniform": np.sqrt(2 / 500),
        "glorot_normal": np.sqrt(2 / 500),
        "he_uniform": np.sqrt(2 / 300),
        "he_normal": np.sqrt(2 / 300),
        "lecun_normal": np.sqrt(1 / 300),
        "normal": 0.01,
    }[init]
    assert a.weights[0].std() == pytest.approx(expected, rel=0.02)
    assert not any(b.any() for b in a.biases)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_runs_end_to_end(dtype: str) -> None:
    from mlpx import make_optimizer

    net = MLP([5, 16, 3], activations="sigmoid", seed=0, dtype=dtype)
    X, _ = data([5, 3], n=64)
    y = X[:, :3].argmax(axis=1)  # a learnable rule
    opt = make_optimizer("adam", lr=0.05)
    first, _ = net.loss_and_grads(X, y)
    for _ in range(50):
        loss, g = net.loss_and_grads(X, y, input_grad=True)
        assert all(p.dtype == np.dtype(dtype) for p in [*g.parameters(), g.inputs])
        opt.step(net.parameters(), g.parameters())
    assert all(p.dtype == np.dtype(dtype) for p in net.parameters())
    assert net.forward(X).dtype == np.dtype(dtype)
    assert loss < 0.5 * first


BAD_INPUTS = [
    (lambda: MLP([5]), "sizes must hold at least two"),
    (lambda: MLP([5, 0, 3]), r"sizes\[1\] must be a positive integer, got 0"),
    (lambda: MLP([5, -3, 3]), r"sizes\[1\] must be a positive integer, got -3"),
    (lambda: MLP([5, 2.5, 3]), r"sizes\[1\] must be a positive integer"),
    (lambda: MLP([5, 3], activations="relux"), "activation must be one of .*relu.*got 'relux'"),
    (lambda: MLP([5, 4, 3], activations=["relu"]), "activations must name one activation per"),
    (lambda: MLP([5, 4, 3], activations=["relu", "bad"]), r"activations\[1\] must be one of"),
    (lambda: MLP([5, 3], init="xavier"), "init must be one of .*glorot_uniform.*got 'xavier'"),
    (lambda: MLP([5, 3], init="normal", init_std=-1), "init_std must be a positive"),
    (lambda: MLP([5, 3], dtype="float16"), "dtype must be one of float32, float64"),
]


@pytest.mark.parametrize(("make", "message"), BAD_INPUTS)
def test_bad_construction_raises_a_named_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_data_raises_a_named_value_error() -> None:
    net = MLP([5, 4, 3], seed=0)
    X, y = data([5, 3], n=6)
    with pytest.raises(ValueError, match=r"y must hold labels in 0\.\.2, got values in 0\.\.3"):
        net.loss_and_grads(X, np.array([0, 1, 2, 3, 0, 1]))
    with pytest.raises(ValueError, match=r"y must hold labels in 0\.\.2, got values in -1"):
        net.loss_and_grads(X, np.array([-1, 1, 2, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"y must be integer labels of shape \(6,\)"):
        net.loss_and_grads(X, y[:5])
    with pytest.raises(ValueError, match=r"X must have shape \(n, 5\) for this network, got"):
        net.forward(X[:, :4])
    with pytest.raises(ValueError, match=r"X must have shape \(n, 5\)"):
        net.forward(X[0])
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X must hold finite values only"):
        net.loss_and_grads(bad, y)
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="X must hold finite values only"):
        net.predict(bad)
    with pytest.raises(ValueError, match=r"weights\[0\] must have shape \(4, 5\)"):
        net.weights[0] = np.zeros((5, 4))
        net.forward(X)


# ---------------------------------------------------------------------- PyTorch autograd

TORCH_ACTS = {
    "linear": lambda t, F: t,
    "sigmoid": lambda t, F: t.sigmoid(),
    "tanh": lambda t, F: t.tanh(),
    "relu": lambda t, F: F.relu(t),
    "leaky_relu": lambda t, F: F.leaky_relu(t, 0.01),
    "elu": lambda t, F: F.elu(t, 1.0),
    "gelu": lambda t, F: F.gelu(t, approximate="tanh"),
    "softplus": lambda t, F: F.softplus(t),
    "silu": lambda t, F: F.silu(t),
}


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(12))
def test_loss_and_every_delta_match_pytorch_autograd(seed: int) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(100 + seed)
    depth = int(rng.integers(1, 5))
    sizes = [int(rng.integers(2, 12)) for _ in range(depth)] + [int(rng.integers(2, 6))]
    acts = [str(a) for a in rng.choice(ALL_ACTIVATIONS, size=depth)]
    net = MLP(sizes, activations=acts, init=str(rng.choice(sorted(INITIALIZERS))), seed=seed)
    for b in net.biases:
        b[:] = rng.normal(scale=0.2, size=b.shape)
    n = int(rng.integers(1, 20))
    X, y = rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)
    loss, g = net.loss_and_grads(X, y, input_grad=True)

    x = torch.tensor(X, requires_grad=True)
    Ws = [torch.tensor(W, requires_grad=True) for W in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    a_list, f_list, f = [], [], x
    for W, b, name in zip(Ws, bs, acts):
        a = f @ W.T + b
        f = TORCH_ACTS[name](a, F)
        if f is a:
            f = a.clone()  # a separate node, so delta_f and delta_a are both recorded
        a.retain_grad()
        f.retain_grad()
        a_list.append(a)
        f_list.append(f)
    t_loss = F.cross_entropy(f, torch.tensor(y))
    t_loss.backward()

    pairs = [("loss", np.array(loss), t_loss), ("delta_x", g.inputs, x.grad)]
    for i in range(depth):
        pairs += [
            (f"dW_{i + 1}", g.weights[i], Ws[i].grad),
            (f"db_{i + 1}", g.biases[i], bs[i].grad),
            (f"delta_a_{i + 1}", g.pre_activations[i], a_list[i].grad),
            (f"delta_f_{i + 1}", g.activations[i], f_list[i].grad),
        ]
    for name, ours, theirs in pairs:
        diff = float(np.max(np.abs(ours - theirs.detach().numpy())))
        WORST["autograd"] = max(WORST["autograd"], diff)
        assert diff < 1e-10, f"{name} ({sizes}, {acts}): max abs difference {diff:.2e}"

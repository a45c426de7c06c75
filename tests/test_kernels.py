"""The compiled kernels (mlpx/kernels.py, backend.jit) against the NumPy code they replace.

Adam's kernel and the relu kernels must be bit-identical to the NumPy passes; the fused
cross-entropy agrees to a few ulps (another exp/log and summation order). Every test that
needs Numba skips without it; the settings tests run either way.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mlpx.app.config import ConfigError, backend_settings
from mlpx.fast import kernels
from mlpx.nn.losses import cross_entropy_and_delta
from mlpx.nn.model import MLP
from mlpx.nn.optim import flatten_state, make_optimizer

needs_numba = pytest.mark.skipif(not kernels.available(), reason="Numba is not installed")
DTYPES = ["float32", "float64"]
# ulps of agreement of the fused cross-entropy and everything downstream of it
RTOL = {"float32": 2e-5, "float64": 1e-12}


def _pair(dtype: str, sizes: list[int], activations, seed: int = 0) -> tuple[MLP, MLP]:
    return tuple(  # type: ignore[return-value]
        MLP(sizes, activations, seed=seed, dtype=dtype, jit=jit) for jit in ("true", "false")
    )


# ----------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("TRUE", "true"), ("false", "false"), (True, "true"), (False, "false")],
)
def test_settings_are_canonical(value, expected) -> None:
    assert kernels.check_setting(value) == expected


@pytest.mark.parametrize("value", ["yes", 1, None, "numba"])
def test_unknown_setting_is_one_line_naming_the_key(value) -> None:
    with pytest.raises(kernels.JitError, match=r"^backend\.jit must be one of auto, true, false"):
        kernels.check_setting(value)


def test_without_numba_auto_falls_back_and_true_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert kernels.resolve("auto") is False
    assert kernels.resolve("false") is False
    assert MLP([4, 3, 2], jit="auto").jit is False
    with pytest.raises(kernels.JitError) as info:
        kernels.resolve("true")
    assert str(info.value) == (
        'backend.jit=true needs Numba: pip install "mlpx[jit]" (or set backend.jit=auto)'
    )
    with pytest.raises(ConfigError, match=r"^backend\.jit=true needs Numba"):
        backend_settings({"name": "numpy", "dtype": "float64", "device": "cpu", "jit": True})
    with pytest.raises(kernels.JitError, match=r"^jit=true needs Numba"):
        make_optimizer("adam", jit="true")


def test_numba_that_cannot_load_falls_back_or_says_why(monkeypatch, caplog) -> None:
    """Numba installed but broken (say a NumPy it does not support yet): auto trains with
    NumPy and warns once; true stops with one line that says why."""

    def broken():
        raise ImportError("Numba needs NumPy 2.3 or less.\nGot NumPy 2.9.")

    monkeypatch.setattr(kernels, "available", lambda: True)
    monkeypatch.setattr(kernels, "_build", broken)
    monkeypatch.setattr(kernels, "_kernels", None)
    monkeypatch.setattr(kernels, "_failure", None)
    monkeypatch.setattr(kernels, "_warned", False)
    with caplog.at_level("WARNING", logger="mlpx.fast.kernels"):
        assert kernels.resolve("auto") is False
        net = MLP([4, 3, 2], jit="auto")
        assert make_optimizer("adam", jit="auto").jit is False
    assert net.jit is False and net._kernels is None
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "backend.jit=auto: Numba is installed but could not be loaded (ImportError: Numba "
        "needs NumPy 2.3 or less.); training with NumPy alone"
    ]
    with pytest.raises(ConfigError) as info:
        backend_settings({"name": "numpy", "dtype": "float64", "device": "cpu", "jit": "true"})
    assert str(info.value) == (
        "backend.jit=true: Numba is installed but could not be loaded (ImportError: Numba "
        "needs NumPy 2.3 or less.)"
    )


def test_false_never_builds_the_kernels() -> None:
    net = MLP([4, 3, 2], jit="false")
    assert net.jit is False and net._kernels is None
    assert make_optimizer("adam", jit=False).jit is False


@needs_numba
def test_other_backends_ignore_jit() -> None:
    strict = pytest.importorskip("array_api_strict")
    assert strict is not None
    assert MLP([4, 3, 2], backend="array_api_strict", jit="true").jit is False


# ----------------------------------------------------------------- Adam


OPTIMIZER_CASES = [
    ("adam", {}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "amsgrad": True, "betas": (0.8, 0.99)}),
    ("adam", {"lr": 0.05, "betas": (0.3, 0.9), "eps": 1e-3}),  # 1 - beta1 >= 0.5 branch
    ("adamw", {"lr": 0.05}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("momentum", {"lr": 0.05}),
    ("nesterov", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.2}),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.01, "centered": True, "alpha": 0.3}),  # 1 - alpha >= 0.5 branch
    ("rmsprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "eps": 1e-4}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
]


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "hp"),
    OPTIMIZER_CASES,
    ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZER_CASES)],
)
def test_optimizer_kernels_are_bit_identical_to_the_numpy_passes(
    dtype, name, hp, monkeypatch
) -> None:
    k = kernels.get()
    calls: list[str] = []

    def counting(kernel: str, fn):
        def counted(*args):
            calls.append(kernel)
            return fn(*args)

        return counted

    for kernel in ("adam", "sgd", "rmsprop", "adagrad"):  # count the kernels' calls
        monkeypatch.setattr(k, kernel, counting(kernel, getattr(k, kernel)))
    rng = np.random.default_rng(1)
    size = 700  # params tile one flat buffer, as MLP's do
    p0 = rng.standard_normal(size).astype(dtype)
    grads = [
        rng.standard_normal(size).astype(dtype) * 10.0 ** rng.integers(-4, 2) for _ in range(30)
    ]
    results = {}
    for jit in (True, False):
        flat = p0.copy()
        params = [flat[:300].reshape(20, 15), flat[300:]]
        gflat = np.empty_like(flat)
        gparams = [gflat[:300].reshape(20, 15), gflat[300:]]
        opt = make_optimizer(name, schedule={"name": "cosine", "T_max": 30}, jit=jit, **hp)
        before = len(calls)
        for g in grads:
            gflat[...] = g
            opt.step(params, gparams)
        assert opt._flat is not None  # the flat path (where the kernels run) was taken
        results[jit] = (flat, opt.state_dict(), len(calls) - before)
    # every step ran the kernel (SGD with momentum: all but the first, which makes the buffer)
    assert results[True][2] >= 29 and results[False][2] == 0
    assert np.array_equal(results[True][0], results[False][0])
    assert results[True][0].dtype == np.dtype(dtype)
    fast, slow = (flatten_state(results[jit][1]) for jit in (True, False))
    assert fast.keys() == slow.keys()
    for key in slow:
        assert np.array_equal(fast[key], slow[key]), key


@needs_numba
def test_adam_kernel_propagates_nan_like_numpy() -> None:
    outs = []
    for jit in (True, False):
        flat = np.ones(10)
        gflat = np.full(10, 0.5)
        gflat[3] = np.nan
        opt = make_optimizer("adam", amsgrad=True, jit=jit)
        opt.step([flat], [gflat])
        outs.append(flat)
    assert np.isnan(outs[0][3]) and np.isnan(outs[1][3])
    assert np.array_equal(outs[0], outs[1], equal_nan=True)


# ----------------------------------------------------------------- the training step


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("sizes", "activations"),
    [
        ([64, 64, 10], "relu"),
        ([64, 32, 16, 10], ["relu", "tanh", "linear"]),
        ([64, 20, 20, 20, 10], ["tanh", "relu", "relu", "relu"]),
    ],
)
def test_train_batch_matches_the_numpy_step(dtype, sizes, activations) -> None:
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)).astype(dtype)
    fast, slow = _pair(dtype, sizes, activations)
    assert fast.jit and not slow.jit
    rows = np.random.default_rng(0).permutation(len(y))[:50]
    g_fast = g_slow = None
    for step in range(3):  # the buffers are reused from the second step on
        batch = rows[step * 16 : step * 16 + 16 + step]  # 16, 17, 18 rows: new workspaces
        lf, cf, g_fast = fast.train_batch(X, y, batch, out=g_fast)
        ls, cs, g_slow = slow.train_batch(X, y, batch, out=g_slow)
        assert cf == cs and isinstance(cf, int)
        assert lf == pytest.approx(ls, rel=RTOL[dtype])
        for i, act in enumerate(fast.activation_fns):
            if act.name == "relu":  # bias + relu kernel: bit-identical
                assert np.array_equal(fast._a[i], slow._a[i])
                assert np.array_equal(fast._f[i + 1], slow._f[i + 1])
        for a, b in zip(g_fast.parameters(), g_slow.parameters()):
            np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)
        for a, b in zip(g_fast.pre_activations, g_slow.pre_activations):
            np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * 1e-2)


@needs_numba
def test_fused_cross_entropy_matches_the_reference() -> None:
    k = kernels.get()
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        logits = (rng.standard_normal((33, 7)) * 30).astype(dtype)  # large: log-sum-exp matters
        logits[5, 2] = logits[5, 4] = logits[5].max() + 1  # a tie: the first index wins
        y = rng.integers(0, 7, 33)
        delta = np.empty_like(logits)
        loss, hits = k.cross_entropy(logits, y, delta, np.array([33, 1 / 33], dtype))
        ref_loss, ref_delta = cross_entropy_and_delta(logits, y)
        assert loss == pytest.approx(float(ref_loss), rel=RTOL[dtype])
        np.testing.assert_allclose(delta, ref_delta, rtol=RTOL[dtype] * 10, atol=1e-7)
        assert hits == int(np.sum(np.argmax(logits, axis=1) == y))


@needs_numba
def test_nan_and_bad_labels_in_the_fused_loss() -> None:
    net = MLP([4, 5, 3], jit=True)
    X = np.ones((6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    net.weights[0][0, 0] = np.nan
    loss, _ = net.batch_loss_and_grads(X, y)
    assert np.isnan(loss)
    net = MLP([4, 5, 3], jit=True)
    with pytest.raises(ValueError, match=r"labels must be integers in 0\.\.2"):
        net.batch_loss_and_grads(X, np.array([0, 1, 2, 3, 1, 2]))


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_with_and_without_kernels_agree(dtype) -> None:
    from mlpx.data import load_dataset
    from mlpx.tracking import MemoryTracker
    from mlpx.train import EarlyStopping, TrainerSettings, fit

    data = load_dataset("digits", seed=0)
    out = {}
    for jit in (True, False):
        rng = np.random.default_rng(0)
        net = MLP([64, 32, 10], "relu", rng=rng, dtype=dtype, jit=jit)
        cfg = TrainerSettings(
            epochs=3, batch_size=32, early_stopping=EarlyStopping(patience=0), progress="false"
        )
        tracker = MemoryTracker()
        fit(net, make_optimizer("adam", lr=1e-3, jit=jit), data, cfg, tracker, rng=rng)
        out[jit] = (tracker.metrics, [W.copy() for W in net.weights])
    assert out[True][0].keys() == out[False][0].keys()
    for key, values in out[False][0].items():
        got = [v for _, v in out[True][0][key]]
        want = [v for _, v in values]
        np.testing.assert_allclose(got, want, rtol=100 * RTOL[dtype], err_msg=key)
    for a, b in zip(*(out[j][1] for j in (True, False))):
        np.testing.assert_allclose(a, b, rtol=100 * RTOL[dtype], atol=100 * RTOL[dtype] * 1e-2)

"""The compiled kernels of the training step (mlpx/fast/kernels.py, backend.jit) against the
NumPy code they replace, and the jit settings.

The relu kernels must be bit-identical to the NumPy passes; the fused cross-entropy agrees
to a few ulps (another exp/log and summation order). The optimizer kernels are tested in
tests/test_fast_optim.py. Every test that needs Numba skips without it; the settings tests
run either way.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mlpx.app.build import build_backend
from mlpx.app.config import backend_settings
from mlpx.fast import kernels
from mlpx.fast.step import FastStep
from mlpx.nn.losses import cross_entropy_and_delta
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer

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
    assert FastStep(MLP([4, 3, 2], jit="auto")).kernels is None
    with pytest.raises(kernels.JitError) as info:
        kernels.resolve("true")
    assert str(info.value) == (
        'backend.jit=true needs Numba: pip install "mlpx[jit]" (or set backend.jit=auto)'
    )
    settings = backend_settings({"name": "numpy", "dtype": "float64", "device": "cpu", "jit": True})
    with pytest.raises(kernels.JitError, match=r"^backend\.jit=true needs Numba"):
        build_backend(settings)  # the config checks the value; the run's start loads Numba
    with pytest.raises(kernels.JitError, match=r"^jit=true needs Numba"):
        FastStep(MLP([4, 3, 2], jit="true"), make_optimizer("adam", jit="true"))


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
        step = FastStep(MLP([4, 3, 2], jit="auto"))
    assert step.kernels is None
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "backend.jit=auto: Numba is installed but could not be loaded (ImportError: Numba "
        "needs NumPy 2.3 or less.); training with NumPy alone"
    ]
    numpy = {"name": "numpy", "dtype": "float64", "device": "cpu"}
    settings = backend_settings({**numpy, "jit": "true"})
    with pytest.raises(kernels.JitError) as info:
        build_backend(settings)
    assert str(info.value) == (
        "backend.jit=true: Numba is installed but could not be loaded (ImportError: Numba "
        "needs NumPy 2.3 or less.)"
    )


def test_false_never_builds_the_kernels(monkeypatch) -> None:
    def fail():
        raise AssertionError("the kernels were built")

    monkeypatch.setattr(kernels, "_build", fail)
    monkeypatch.setattr(kernels, "_kernels", None)
    net = MLP([4, 3, 2], jit="false")
    assert net.jit == "false"
    assert FastStep(net, make_optimizer("adam", jit=False)).kernels is None


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
    fast_net, slow_net = _pair(dtype, sizes, activations)
    fast, slow = FastStep(fast_net), FastStep(slow_net)
    assert fast.kernels is not None and slow.kernels is None
    rows = np.random.default_rng(0).permutation(len(y))[:50]
    for step in range(3):  # the buffers are reused from the second step on
        batch = rows[step * 16 : step * 16 + 16 + step]  # 16, 17, 18 rows: new workspaces
        lf, cf, g_fast = fast.train_batch(X, y, batch)
        ls, cs, g_slow = slow.train_batch(X, y, batch)
        assert cf == cs and isinstance(cf, int)
        assert lf == pytest.approx(ls, rel=RTOL[dtype])
        for i, act in enumerate(fast_net.activation_fns):
            if act.name == "relu":  # bias + relu kernel: bit-identical
                assert np.array_equal(fast_net.cache.a[i], slow_net.cache.a[i])
                assert np.array_equal(fast_net.cache.f[i + 1], slow_net.cache.f[i + 1])
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
    with np.errstate(invalid="ignore"):
        loss, _, _ = FastStep(net).train_batch(X, y, np.arange(6))
    assert np.isnan(loss)
    step = FastStep(MLP([4, 5, 3], jit=True))
    with pytest.raises(ValueError, match=r"labels must be integers in 0\.\.2"):
        step.train_batch(X, np.array([0, 1, 2, 3, 1, 2]), np.arange(6))


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

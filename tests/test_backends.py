"""The MLP, the optimizers and the training loop on every array backend, against NumPy.

Backends: ``numpy``, ``array_api_strict`` and ``torch`` on the CPU always (each skipped
when not installed); ``torch`` on CUDA and ``cupy`` are marked ``gpu`` and skipped when
no CUDA device is visible. Every backend must give NumPy's numbers to round-off, keep its
arrays in its own namespace, device and dtype, and fail with one exact line when a
library or a device is missing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlpx import ACTIVATIONS, INITIALIZERS, MLP, OPTIMIZERS, clip_grad_norm, global_norm
from mlpx.backend import BACKENDS, Backend, BackendError, get_backend, to_numpy
from mlpx.nn.optim import make_optimizer
from tests.cli_helpers import run_mlpx

ALL_ACTIVATIONS = sorted(ACTIVATIONS)
ARCHITECTURES = [[5, 3], [6, 7, 4], [4, 8, 5, 3]]
MODULES = {name: name for name in ("numpy", "cupy", "torch", "array_api_strict")}

# (backend name, device): the CPU ones always, the CUDA ones behind the gpu marker.
BACKEND_CASES = [
    pytest.param(("numpy", None), id="numpy"),
    pytest.param(("array_api_strict", None), id="array_api_strict"),
    pytest.param(("torch", "cpu"), id="torch-cpu"),
    pytest.param(("torch", "cuda"), id="torch-cuda", marks=pytest.mark.gpu),
    pytest.param(("cupy", "cuda"), id="cupy", marks=pytest.mark.gpu),
]


def _torch_cuda_visible() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _make_backend(name: str, device: str | None) -> Backend:
    """The backend, or a clean skip when its library or its GPU is not there."""
    module = pytest.importorskip(MODULES[name])
    if name == "cupy" and not module.cuda.is_available():
        pytest.skip("no CUDA device is visible (cupy.cuda.is_available() is False)")
    if name == "torch" and device == "cuda" and not module.cuda.is_available():
        pytest.skip("no CUDA device is visible (torch.cuda.is_available() is False)")
    return get_backend(name, device)


@pytest.fixture(params=BACKEND_CASES)
def backend(request: pytest.FixtureRequest) -> Backend:
    return _make_backend(*request.param)


@pytest.fixture
def cpu_backends() -> dict[str, Backend]:
    """The installed CPU backends other than NumPy (the float32 and fit checks)."""
    out = {}
    for name in ("array_api_strict", "torch"):
        if importlib.util.find_spec(name) is not None:
            out[name] = get_backend(name, "cpu" if name == "torch" else None)
    if not out:
        pytest.skip("neither array_api_strict nor torch is installed")
    return out


NUMPY = get_backend("numpy")


# ---------------------------------------------------------------------------- helpers


def array_type(backend: Backend) -> type:
    """The array class of a backend's namespace (torch.Tensor, cupy.ndarray, ...)."""
    if backend.name == "numpy":
        return np.ndarray
    if backend.name == "torch":
        import torch

        return torch.Tensor
    if backend.name == "cupy":
        import cupy

        return cupy.ndarray
    import array_api_strict

    return type(array_api_strict.asarray(0.0))


def assert_native(x: Any, backend: Backend, dtype: str = "float64") -> None:
    """``x`` is an array of ``backend``'s namespace, on its device, of ``dtype``."""
    assert isinstance(x, array_type(backend)), f"{type(x)} is not a {backend.name} array"
    assert x.dtype == backend.dtype(dtype), f"{x.dtype} is not {dtype}"
    if backend.name != "numpy":
        from array_api_compat import device

        assert device(x) == backend.device, f"{device(x)} is not {backend.device}"


def rel_diff(x: Any, ref: np.ndarray) -> float:
    """max |x - ref| / max |ref|: the error relative to the array's scale (0 when equal).

    Elementwise relative errors are meaningless for entries that cancel to ~0, so the
    difference is measured against the largest entry of the reference.
    """
    x, ref = to_numpy(x), np.asarray(ref)
    assert x.shape == ref.shape, f"shape {x.shape} != {ref.shape}"
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(x.astype(np.float64) - ref))) if ref.size else 0.0
    return err / scale if scale > 0 else err


def assert_close(x: Any, ref: np.ndarray, tol: float = 1e-12, what: str = "") -> None:
    err = rel_diff(x, ref)
    assert err <= tol, f"{what}: relative difference {err:.3e} > {tol:.0e}"


def problem_data(sizes: list[int], n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def random_biases(sizes: list[int], seed: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=0.3, size=p) for p in sizes[1:]]


# ------------------------------------------------------------------- model and deltas


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_same_seed_gives_numpys_initial_weights_exactly(backend: Backend, init: str) -> None:
    sizes = [7, 9, 5, 3]
    ref = MLP(sizes, "tanh", init=init, seed=3)
    net = MLP(sizes, "tanh", init=init, seed=3, backend=backend.name, device=backend.device_name)
    assert net.backend.name == backend.name and net.xp is backend.xp
    for W, W0, b, b0 in zip(net.weights, ref.weights, net.biases, ref.biases, strict=True):
        assert_native(W, backend)
        assert_native(b, backend)
        np.testing.assert_array_equal(to_numpy(W), W0)
        np.testing.assert_array_equal(to_numpy(b), b0)
    # float32: the same float64 draw, rounded once
    net32 = MLP(
        sizes,
        "tanh",
        init=init,
        seed=3,
        dtype="float32",
        backend=backend,
    )
    for W, W0 in zip(net32.weights, ref.weights, strict=True):
        assert_native(W, backend, "float32")
        np.testing.assert_array_equal(to_numpy(W), W0.astype(np.float32))


@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=lambda s: "x".join(map(str, s)))
def test_every_delta_matches_numpy(backend: Backend, activation: str, sizes: list[int]) -> None:
    acts = [activation] * (len(sizes) - 1)  # the output layer too: its delta_a is checked
    X, y = problem_data(sizes)
    ref = MLP(sizes, acts, init="glorot_normal", seed=1)
    ref.biases = random_biases(sizes)
    ref_loss, ref_g = ref.loss_and_grads(X, y, input_grad=True)
    ref_logits = to_numpy(ref.forward(X)).copy()

    net = MLP(sizes, acts, init="glorot_normal", seed=1, backend=backend)
    net.biases = [backend.asarray(b) for b in random_biases(sizes)]
    Xb, yb = backend.asarray(X), backend.asarray(y)
    loss, g = net.loss_and_grads(Xb, yb, input_grad=True)

    assert isinstance(loss, float)
    assert math.isclose(loss, ref_loss, rel_tol=1e-12, abs_tol=0.0)
    groups = {
        "dW": (g.weights, ref_g.weights),
        "db": (g.biases, ref_g.biases),
        "delta_a": (g.pre_activations, ref_g.pre_activations),
        "delta_f": (g.activations, ref_g.activations),
    }
    for what, (ours, theirs) in groups.items():
        assert len(ours) == len(theirs) == len(sizes) - 1
        for i, (d, d0) in enumerate(zip(ours, theirs, strict=True)):
            assert_native(d, backend)
            assert_close(d, d0, what=f"{what}_{i + 1}")
    assert_native(g.inputs, backend)
    assert_close(g.inputs, ref_g.inputs, what="delta_x")

    logits = net.forward(Xb)
    assert_native(logits, backend)
    assert_close(logits, ref_logits, what="logits")
    pred = net.predict(Xb)
    assert isinstance(pred, array_type(backend))
    np.testing.assert_array_equal(to_numpy(pred), to_numpy(ref.predict(X)))


def test_numpy_inputs_are_moved_to_the_device(backend: Backend) -> None:
    sizes = [4, 6, 3]
    X, y = problem_data(sizes)
    net = MLP(sizes, "relu", seed=0, backend=backend)
    ref = MLP(sizes, "relu", seed=0)
    loss, g = net.loss_and_grads(X, y)  # plain NumPy in
    ref_loss, ref_g = ref.loss_and_grads(X, y)
    assert math.isclose(loss, ref_loss, rel_tol=1e-12)
    for d, d0 in zip(g.parameters(), ref_g.parameters(), strict=True):
        assert_native(d, backend)
        assert_close(d, d0, what="grad from NumPy inputs")
    assert g.inputs is None  # delta_x only when asked for
    assert_native(net.forward(X), backend)


# ------------------------------------------------------------------------- optimizers

# (name, hyper-parameters): every optimizer, with weight decay, nesterov, amsgrad and the
# centered variants, and a schedule so the learning rate changes between steps.
OPTIMIZER_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("momentum", {"lr": 0.05, "weight_decay": 0.01}),
    ("nesterov", {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.2}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "amsgrad": True, "betas": (0.8, 0.99)}),
    ("adam", {"lr": 0.05, "schedule": {"name": "cosine", "T_max": 15}}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("rmsprop", {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "eps": 1e-4}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
]
OPTIMIZER_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(OPTIMIZER_CASES)]
PARAM_SHAPES = [(3, 4), (4,), (2, 2, 3)]
OPT_STEPS = 20


def test_optimizer_cases_cover_every_optimizer() -> None:
    assert {name for name, _ in OPTIMIZER_CASES} == set(OPTIMIZERS)


def run_optimizer(backend: Backend, name: str, hparams: dict, steps: int = OPT_STEPS) -> list:
    """``steps`` updates of a noisy quadratic, gradients computed in the backend itself."""
    rng = np.random.default_rng(5)
    start = [rng.normal(size=s) for s in PARAM_SHAPES]
    curv = [backend.asarray(rng.uniform(0.5, 2.0, size=s)) for s in PARAM_SHAPES]
    centre = [backend.asarray(rng.normal(size=s)) for s in PARAM_SHAPES]
    noise = [[backend.asarray(rng.normal(size=s)) for s in PARAM_SHAPES] for _ in range(steps)]
    params = [backend.asarray(p) for p in start]
    ids = [id(p) for p in params]
    opt = make_optimizer(name, **hparams)
    for t in range(steps):
        grads = [c * (p - m) + 0.1 * e for p, c, m, e in zip(params, curv, centre, noise[t])]
        opt.step(params, grads)
    assert [id(p) for p in params] == ids  # updated in place
    return params


@pytest.mark.parametrize(("name", "hparams"), OPTIMIZER_CASES, ids=OPTIMIZER_IDS)
def test_optimizers_match_numpy(backend: Backend, name: str, hparams: dict) -> None:
    ref = run_optimizer(NUMPY, name, hparams)
    ours = run_optimizer(backend, name, hparams)
    for i, (p, p0) in enumerate(zip(ours, ref, strict=True)):
        assert_native(p, backend)
        assert_close(p, p0, what=f"{name} params[{i}] after {OPT_STEPS} steps")


def test_global_norm_and_clipping_match_numpy(backend: Backend) -> None:
    rng = np.random.default_rng(7)
    ref = [rng.normal(size=s) for s in PARAM_SHAPES]
    expected = math.sqrt(sum(float(np.sum(g * g)) for g in ref))
    grads = [backend.asarray(g.copy()) for g in ref]  # clipping works in place
    assert math.isclose(global_norm(grads), expected, rel_tol=1e-12)

    ids = [id(g) for g in grads]
    norm = clip_grad_norm(grads, 0.5)  # clips: returns the norm measured before
    assert math.isclose(norm, expected, rel_tol=1e-12)
    assert [id(g) for g in grads] == ids
    for g, g0 in zip(grads, ref, strict=True):
        assert_native(g, backend)
        assert_close(g, g0 * (0.5 / (expected + 1e-6)), what="clipped grad")
    assert math.isclose(global_norm(grads), 0.5, rel_tol=1e-6)

    norm = clip_grad_norm(grads, 10.0)  # below the limit: untouched
    assert math.isclose(norm, 0.5, rel_tol=1e-6)
    assert math.isclose(global_norm(grads), 0.5, rel_tol=1e-6)

    bad = [backend.asarray(np.array([np.inf, 1.0]))]
    assert not math.isfinite(clip_grad_norm(bad, 1.0))
    np.testing.assert_array_equal(to_numpy(bad[0]), [np.inf, 1.0])  # left as it was


# ------------------------------------------------------------------------ training


def _fit(backend: Backend, data, widths: list[int], epochs: int, batch: int, dtype="float64"):
    from mlpx.tracking import NullTracker
    from mlpx.train import EarlyStopping, TrainerSettings, fit

    rng = np.random.default_rng(0)
    net = MLP(
        [data.n_features, *widths, data.n_classes],
        "relu",
        rng=rng,
        dtype=dtype,
        backend=backend,
    )
    cfg = TrainerSettings(
        epochs=epochs,
        batch_size=batch,
        seed=0,
        log_every_n_steps=1,  # train/loss and the gradient norms of every step
        early_stopping=EarlyStopping(patience=0),
        progress="false",
    )
    opt = make_optimizer("adam", lr=1e-3)
    result = fit(net, opt, data, cfg, NullTracker(), rng=rng)
    return net, result


@pytest.fixture(scope="module")
def digits():
    from mlpx.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="module")
def iris():
    from mlpx.data import load_dataset

    return load_dataset("iris")


# The numpy and torch CPU runs do the same float64 operations in the same order; they
# differ only in round-off, because each library sums its GEMMs and reductions with its
# own kernels (NumPy's OpenBLAS 0.3.31 vs torch 2.13's MKL). Measured on an x86-64 CPU
# (AVX-512, 1 or 2 threads, the same result both ways): over every logged value of the
# 3 epochs below (per-step train/loss_window and gradient norms, per-epoch val/loss, test/loss)
# the largest relative difference is 6.4e-16, i.e. ~3 ulp; val/loss 0.0. The tolerance is
# ~150x that: tight enough to catch any real change of the arithmetic (a different
# formula, a float32 detour: >= 1e-8), loose enough for other BLAS builds and thread
# counts. array_api_strict (NumPy underneath) measured 1.7e-16 and uses the same bound.
# For reference, on an H100 host (16 threads, torch 2.11): torch CPU 6.8e-16, torch CUDA
# 1.1e-15, cupy 8.4e-16 on the same run.
# Accuracies (counts of argmax hits) must be equal.
FIT_PARITY_RTOL = 1e-13


def _history_diff(hist: dict, ref: dict) -> dict[str, float]:
    """Max relative difference per key (steps must be identical)."""
    assert set(hist) == set(ref)
    out = {}
    for key in ref:
        steps, values = zip(*hist[key], strict=True)
        ref_steps, ref_values = zip(*ref[key], strict=True)
        assert steps == ref_steps, key
        assert all(isinstance(v, float) for v in values), key
        a, b = np.asarray(values), np.asarray(ref_values)
        out[key] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
    return out


def test_fit_on_torch_cpu_matches_numpy(digits) -> None:
    torch_cpu = _make_backend("torch", "cpu")
    _, ref = _fit(NUMPY, digits, [64, 32], epochs=3, batch=32)
    net, res = _fit(torch_cpu, digits, [64, 32], epochs=3, batch=32)
    diffs = _history_diff(res.history, ref.history)
    for key in ("train/loss", "val/loss", "val/accuracy"):
        assert key in diffs
    for key in ("val/accuracy", "train/accuracy", "test/accuracy", "epoch"):
        assert diffs[key] == 0.0, key
    worst = max(diffs.values())
    assert worst <= FIT_PARITY_RTOL, f"numpy vs torch: {diffs}"
    assert math.isclose(res.objective, ref.objective, rel_tol=FIT_PARITY_RTOL)
    for p in net.parameters():
        assert_native(p, torch_cpu)


def test_a_whole_epoch_runs_on_array_api_strict(iris) -> None:
    strict = _make_backend("array_api_strict", None)
    _, ref = _fit(NUMPY, iris, [16], epochs=1, batch=16)
    net, res = _fit(strict, iris, [16], epochs=1, batch=16)
    diffs = _history_diff(res.history, ref.history)
    assert len(res.history["train/loss_window"]) > 5  # one value per step
    assert max(diffs.values()) <= FIT_PARITY_RTOL, diffs
    for p in net.parameters():
        assert_native(p, strict)


# --------------------------------------------------------------------------- float32


def test_float32_stays_float32(cpu_backends: dict[str, Backend], iris) -> None:
    sizes = [iris.n_features, 8, 6, iris.n_classes]
    X, y = iris.X_train[:10], iris.y_train[:10]
    for backend in cpu_backends.values():
        net = MLP(sizes, "tanh", seed=0, dtype="float32", backend=backend)
        for p in net.parameters():
            assert_native(p, backend, "float32")
        Xb, yb = backend.asarray(X), backend.asarray(y)  # float64 data in
        assert_native(net.forward(Xb), backend, "float32")
        loss, g = net.loss_and_grads(Xb, yb, input_grad=True)
        assert isinstance(loss, float)
        deltas = [*g.parameters(), *g.pre_activations, *g.activations, g.inputs]
        for d in deltas:
            assert_native(d, backend, "float32")
        opt = make_optimizer("adam", lr=1e-2, weight_decay=0.1)
        opt.step(net.parameters(), g.parameters())
        for p in net.parameters():
            assert_native(p, backend, "float32")

        net, res = _fit(backend, iris, [8], epochs=1, batch=32, dtype="float32")
        for p in net.parameters():
            assert_native(p, backend, "float32")
        assert math.isfinite(res.last("train/loss"))


# ------------------------------------------------------------------------ error lines


def test_backend_registry() -> None:
    assert BACKENDS == ("numpy", "cupy", "torch", "array_api_strict")
    b = get_backend()
    assert (b.name, b.xp, b.device_name) == ("numpy", np, "cpu")
    assert repr(b) == "Backend('numpy', device='cpu')"


@pytest.mark.skipif(_torch_cuda_visible(), reason="a CUDA device is visible")
def test_torch_cuda_without_a_gpu() -> None:
    pytest.importorskip("torch")
    for device in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(BackendError) as info:
            get_backend("torch", device)
        assert str(info.value) == "no CUDA device is visible (torch.cuda.is_available() is False)"


def _hide(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    """Make ``importlib.util.find_spec`` report ``hidden`` as not installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any):
        return None if name == hidden else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(
    ("name", "device", "message"),
    [
        ("cupy", None, "backend 'cupy' needs CuPy: pip install \"mlpx[cuda12]\""),
        ("cupy", "cuda:1", "backend 'cupy' needs CuPy: pip install \"mlpx[cuda12]\""),
        ("torch", None, "backend 'torch' needs PyTorch: pip install \"mlpx[torch]\""),
        ("torch", "cuda", "backend 'torch' needs PyTorch: pip install \"mlpx[torch]\""),
        (
            "array_api_strict",
            None,
            "backend 'array_api_strict' needs array-api-strict: pip install \"mlpx[strict]\"",
        ),
    ],
)
def test_a_missing_library_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, name: str, device: str | None, message: str
) -> None:
    _hide(monkeypatch, MODULES[name])
    with pytest.raises(BackendError) as info:
        get_backend(name, device)
    assert str(info.value) == message


def test_cupy_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("cupy")
    fake.__spec__ = importlib.machinery.ModuleSpec("cupy", None)  # find_spec reads it
    fake.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for device in (None, "cuda", "cuda:0"):
        with pytest.raises(BackendError) as info:
            get_backend("cupy", device)
        assert str(info.value) == "no CUDA device is visible (cupy.cuda.is_available() is False)"


@pytest.mark.parametrize(
    ("name", "device", "message"),
    [
        ("numpy", "cuda", "backend.device must be cpu for backend numpy, got 'cuda'"),
        (
            "array_api_strict",
            "cuda",
            "backend.device must be cpu for backend array_api_strict, got 'cuda'",
        ),
        ("cupy", "cpu", "backend.device must be one of cuda, cuda:N, got 'cpu'"),
        ("cupy", "cuda:x", "backend.device must be one of cuda, cuda:N, got 'cuda:x'"),
        ("torch", "cuda:-1", "backend.device must be one of cpu, cuda, cuda:N, mps, got 'cuda:-1'"),
        ("torch", "gpu", "backend.device must be one of cpu, cuda, cuda:N, mps, got 'gpu'"),
        ("torch", 0, "backend.device must be one of cpu, cuda, cuda:N, mps, got 0"),
        (
            "jax",
            None,
            "backend.name must be one of numpy, cupy, torch, array_api_strict, got 'jax'",
        ),
    ],
)
def test_bad_names_and_devices(name: str, device: Any, message: str) -> None:
    with pytest.raises(BackendError) as info:
        get_backend(name, device)
    text = str(info.value)
    assert text.startswith(message), text
    assert repr(device) in text or name == "jax"
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_the_training_modules_import_no_mlflow_hydra_or_sklearn() -> None:
    """benchmarks/gpu_epoch.py runs where only numpy, torch/cupy and scikit-learn exist."""
    code = (
        "import sys\n"
        "import mlpx.backend, mlpx.app.config, mlpx.data, mlpx.nn.model, mlpx.nn.optim\n"
        "import mlpx.train\n"
        "from mlpx.tracking import NullTracker\n"
        "heavy = ('mlflow', 'hydra', 'omegaconf', 'sklearn', 'torch', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -------------------------------------------------------------------- CLI (slow)


@pytest.mark.slow
@pytest.mark.skipif(_torch_cuda_visible(), reason="a CUDA device is visible")
def test_cli_torch_cuda_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    proc = run_mlpx(tmp_path, "backend=torch", "backend.device=cuda", "logger=none", timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mlpx: error:")]
    assert errors == [
        "mlpx: error: no CUDA device is visible (torch.cuda.is_available() is False)"
    ], proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch" not in proc.stderr  # nothing was trained
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow
def test_cli_torch_run_is_tagged_in_mlflow(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_mlpx(tmp_path, "backend=torch", "trainer.epochs=2", f"logger.tracking_uri={uri}")
    assert proc.returncode == 0, proc.stderr
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mlpx")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["backend"], tags["device"], tags["dtype"]) == ("torch", "cpu", "float64")
    assert tags["jit"] == "false"  # the kernels are NumPy's
    assert run.data.metrics["test/accuracy"] > 0.5


@pytest.mark.slow
def test_cli_array_api_strict_runs(tmp_path: Path) -> None:
    pytest.importorskip("array_api_strict")
    proc = run_mlpx(tmp_path, "backend=array_api_strict", "trainer.epochs=1", "logger=none")
    assert proc.returncode == 0, proc.stderr

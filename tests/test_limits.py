"""Sizes, counts and bad input checked before anything large is allocated, and the
divergence message naming its likely cause (issue 19, cases 10, 12, 13)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mlpx.app import limits
from mlpx.app.config import ConfigError, settings_from_dict
from mlpx.app.limits import bounded, check_parallelism, check_sizes, estimate
from mlpx.app.messages import overlay_error
from mlpx.nn.model import MLP
from mlpx.nn.optim import check_hyperparameters, make_optimizer
from mlpx.train import DivergenceError, EarlyStopping, TrainerSettings, fit

GiB = 1 << 30


@pytest.fixture(scope="module")
def compose():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from mlpx.app.cli import config_dir

    def make(*overrides: str) -> dict:
        with initialize_config_dir(config_dir(), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)

    return make


def _check(container: dict, ram: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "available_ram", lambda: ram)
    check_sizes(settings_from_dict(container), container)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.widths=[10000000]"], "model.widths=[10000000]: the network"),
        (["dataset=moons", "dataset.n_samples=2000000000"], "dataset.n_samples=2000000000: "),
        (["model.widths=null", "model.depth=3", "model.width=4000000"], "model.depth=3 / "),
    ],
)
def test_sizes_that_cannot_fit_are_one_line_naming_the_key(compose, monkeypatch, overrides, key):
    container = compose(*overrides)
    with pytest.raises(ConfigError, match="is available") as info:
        _check(container, 16 * GiB, monkeypatch)
    message = str(info.value)
    assert message.startswith(key) and "16 GiB of RAM is available" in message
    assert "\n" not in message


def test_sizes_that_fit_pass_and_the_estimate_scales(compose, monkeypatch) -> None:
    small = compose("model.widths=[512,512]")
    _check(small, 1 * GiB, monkeypatch)  # digits, 2 x 512: a few MiB
    big = compose("model.widths=[4096,4096]")
    assert (
        estimate(settings_from_dict(big))["network"]
        > 20 * estimate(settings_from_dict(small))["network"]
    )
    data = compose("dataset=classification", "dataset.n_samples=100000", "dataset.n_features=100")
    # 100000 x 101 float64, four copies and the float64 run's own: ~400 MB
    assert 300e6 < estimate(settings_from_dict(data))["data"] < 500e6
    with pytest.raises(ConfigError, match=r"^dataset.n_samples=100000: the data"):
        _check(data, 100 << 20, monkeypatch)


def test_too_many_hidden_layers_and_long_run_names(compose, monkeypatch) -> None:
    deep = compose("model.widths=null", "model.depth=20000", "model.width=2")
    with pytest.raises(ConfigError, match=r"^model.depth=20000 / model.width=2 asks for 20000"):
        _check(deep, 64 * GiB, monkeypatch)
    name = settings_from_dict(
        compose("model.widths=null", "model.depth=1000", "model.width=2")
    ).run_name()
    assert len(name) > 2000
    short = bounded(name)
    assert len(short) == limits.MAX_RUN_NAME and short.startswith(name[:100])
    assert bounded(name + "x") != short  # the hash keeps long names apart
    assert bounded("adam-lr0.01-w64-relu") == "adam-lr0.01-w64-relu"


@pytest.mark.parametrize(
    "override",
    [
        "analysis.class_visualisation.steps=100000000",
        "analysis.sanity_checks.overfit_steps=100000000",
        "analysis.gradcheck.samples=1000000",
    ],
)
def test_analysis_counts_are_bounded(compose, override) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key} must be an integer in 1\.\.\d+, got"):
        settings_from_dict(compose(override))


def test_parallelism_settings() -> None:
    assert check_parallelism({"launcher": {"n_jobs": 0}}) == (
        "hydra.launcher.n_jobs must be a non-zero integer (-1: every CPU), got 0"
    )
    assert check_parallelism({"launcher": {"n_jobs": -1}, "sweeper": {"n_jobs": 2}}) is None
    assert "hydra.sweeper.n_jobs must be a positive integer" in check_parallelism(
        {"sweeper": {"n_jobs": 0}}
    )
    assert check_parallelism({"launcher": {"n_jobs": "x"}}) is not None
    assert check_parallelism({}) is None


# ------------------------------------------------------------------ the Python API (case 12)


def test_a_huge_width_is_a_clear_memory_error() -> None:
    with pytest.raises(
        MemoryError, match=r"MLP\(sizes=\[64, 10000000000, 10\]\) has 750,000,000,010 parameters"
    ):
        MLP([64, 10**10, 10])  # fmt: skip


def test_a_width_over_the_available_ram(monkeypatch) -> None:
    from mlpx.nn import model

    monkeypatch.setattr(model, "available_ram", lambda: 100 << 20)
    with pytest.raises(MemoryError, match=r"only 100 MiB is available; use smaller widths"):
        MLP([64, 4_000_000, 10])


def test_load_state_dict_names_a_missing_key() -> None:
    net = MLP([4, 8, 3], seed=0)
    state = net.state_dict()
    del state["b_2"]
    with pytest.raises(ValueError, match=r"state is missing 'b_2'"):
        MLP([4, 8, 3], seed=1).load_state_dict(state)


def test_an_empty_batch_is_a_value_error_not_a_nan_loss() -> None:
    net = MLP([4, 8, 3], seed=0)
    X, y = np.zeros((0, 4)), np.zeros(0, dtype=np.int64)
    for call in (net.loss, net.loss_and_grads):
        with pytest.raises(ValueError, match="empty batch"):
            call(X, y)
    from mlpx.nn.losses import softmax_cross_entropy

    with pytest.raises(ValueError, match="empty batch"):
        softmax_cross_entropy(np.zeros((0, 3)), y)


# ------------------------------------------------------------------ divergence (case 13)

CFG = TrainerSettings(
    epochs=2, batch_size=64, early_stopping=EarlyStopping(patience=0), progress="false"
)
GROWING = {"schedule": {"name": "exponential", "gamma": 1e300}}


@pytest.mark.parametrize(
    ("model", "optimizer", "cause"),
    [
        ({"init": "normal", "init_std": 1e200}, ("adam", {}), "lower model.init_std"),
        ({}, ("adam", {"eps": 0.0}), "optimizer.eps=0 divides by zero"),
        ({}, ("rmsprop", {"eps": 0.0}), "optimizer.eps=0 divides by zero"),
        ({}, ("adam", GROWING), "optimizer.schedule.gamma=1e+300 > 1"),
        ({}, ("sgd", {"lr": 1e9}), "lower optimizer.lr (now 1e+09)"),
    ],
)  # fmt: skip
def test_divergence_names_the_likely_cause(model, optimizer, cause) -> None:
    from mlpx.data import load_dataset

    data = load_dataset("digits", seed=0)
    net = MLP([64, 32, 10], "relu", seed=0, **model)
    with pytest.raises(DivergenceError) as info:
        fit(net, make_optimizer(optimizer[0], **optimizer[1]), data, CFG)
    message = str(info.value)
    assert message.startswith("training diverged at epoch 1, step ") and cause in message
    if "optimizer.lr" not in cause:
        assert "lower optimizer.lr" not in message


def test_messages_name_the_full_schedule_key() -> None:
    cases = [
        ({"name": "cosine"}, "optimizer.schedule.T_max is missing"),
        ({"name": "cosine", "T_max": 0}, "optimizer.schedule.T_max must be"),
    ]
    for schedule, key in cases:
        with pytest.raises(ValueError) as info:
            check_hyperparameters("adam", {"schedule": schedule}, prefix="optimizer.")
        assert str(info.value).startswith(key), info.value
        assert "optimizer.T_max" not in str(info.value)


# ------------------------------------------------------------------ overlays (case 8)


def test_an_overlay_without_the_global_package_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "nopkg.yaml").write_text("optimizer:\n  lr: 0.5\n")
    (folder / "typo.yaml").write_text("# @package global\noptimizer:\n  lr: 0.5\n")
    (folder / "good.yaml").write_text("# @package _global_\noptimizer:\n  lr: 0.5\n")
    nopkg = overlay_error(
        {"experiment": {"optimizer": {"lr": 0.5}}}, {"experiment": "nopkg"}, [str(tmp_path)]
    )
    assert nopkg.startswith(
        f"{folder / 'nopkg.yaml'} must start with the line '# @package _global_'"
    )
    assert "(it sets experiment.optimizer instead of optimizer)" in nopkg
    typo = overlay_error({"global": {"optimizer": {}}}, {"experiment": "typo"}, [str(tmp_path)])
    assert typo.endswith("(it has '# @package global')")
    assert (
        overlay_error({"optimizer": {"lr": 0.5}}, {"experiment": "good"}, [str(tmp_path)]) is None
    )
    hp = overlay_error({"hparams_search": {"x": 1}}, {"hparams_search": "mine"}, [str(tmp_path)])
    assert hp.startswith("hparams_search/mine.yaml must start with") and math.isfinite(len(hp))


@pytest.mark.gpu
def test_on_cuda_the_gpu_memory_is_the_limit(compose) -> None:
    """torch on cuda: the estimate is compared with the GPU's free memory (not the RAM)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    free = torch.cuda.mem_get_info()[0]
    width = 1
    while True:  # the smallest power-of-two width whose estimate exceeds the free memory
        container = compose("backend=torch", "backend.device=cuda", f"model.widths=[{width}]")
        if sum(estimate(settings_from_dict(container)).values()) > free:
            break
        width *= 2
    with pytest.raises(ConfigError, match=r"on the GPU is available: use smaller model.widths"):
        check_sizes(settings_from_dict(container), container)
    half = compose("backend=torch", "backend.device=cuda", f"model.widths=[{width // 4}]")
    check_sizes(settings_from_dict(half), half)  # a quarter of it fits

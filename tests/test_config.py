"""Every config group option composes and validates; bad values give one exact line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mlpx.app.cli import config_dir
from mlpx.app.config import ConfigError, settings_from_dict

CONF = Path(config_dir())
# Every config group is a folder of conf/ (Hydra's own overrides live in conf/hydra): read
# from disk, so a new group that the help text misses makes the help test fail.
GROUPS = sorted(d.name for d in CONF.iterdir() if d.is_dir() and d.name not in ("hydra",))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("[!_]*.yaml"))]


def _cuda_visible() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    return bool(cupy.cuda.is_available())


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def first_comment(path: Path) -> str:
    lines = path.read_text().splitlines()
    header = ("@package", "yaml-language-server")
    return next(x for x in lines if x.startswith("#") and not any(h in x for h in header)).lstrip(
        "# "
    )


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "openml"):
        overrides.append("dataset.openml_name=mnist_784")  # an openml config needs a name
    if group == "hparams_search":
        pytest.importorskip("optuna", minversion="4")  # mlpx's optuna sweeper
    settings = settings_from_dict(composed(*overrides))
    if group in ("experiment", "hparams_search"):
        return
    chosen = getattr(settings, group)
    if group in ("optimizer", "dataset", "backend", "logger"):
        assert chosen.name == option


def test_defaults_are_the_documented_experiment() -> None:
    s = settings_from_dict(composed())
    assert s.dataset.name == "digits"
    assert s.model.widths == [128, 64]
    assert s.model.activations == ["relu", "relu", "linear"]
    assert s.optimizer.name == "adam"
    assert s.logger.name == "mlflow"
    assert s.run_name() == "adam-lr0.001-w128x64-relu"


def test_help_lists_every_option_with_its_description() -> None:
    """--help is built when it runs, from the config search path (mlpx.app.messages)."""
    from hydra.core.global_hydra import GlobalHydra

    from mlpx.app.messages import help_groups, search_folders

    assert "${mlpx_groups:}" in (CONF / "hydra" / "help" / "mlpx.yaml").read_text()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        help_text = help_groups(loader, search_folders(loader))
    assert "_schedule" not in help_text and "schemas" not in help_text
    for group, option in OPTIONS:
        line = f"{option:<20} {first_comment(CONF / group / (option + '.yaml'))}"
        assert line in help_text, f"mlpx --help misses {group}={option}: {line!r}"


def test_experiment_overlay_changes_only_what_differs() -> None:
    base = composed()
    moons = composed("experiment=moons_small")
    assert moons["dataset"]["name"] == "moons"
    assert moons["model"]["widths"] == [16, 16]
    assert moons["optimizer"] == base["optimizer"]
    assert moons["backend"] == base["backend"]


def test_depth_width_shorthand() -> None:
    s = settings_from_dict(composed("model.widths=null", "model.depth=3", "model.width=32"))
    assert s.model.widths == [32, 32, 32]
    assert s.model.tag == "w32x32x32-relu"
    s = settings_from_dict(composed("model=deep"))
    assert s.model.widths == [64] * 4


def test_per_layer_activations() -> None:
    s = settings_from_dict(composed("model.activation=null", "model.activations=[tanh,relu]"))
    assert s.model.activations == ["tanh", "relu", "linear"]
    s = settings_from_dict(
        composed("model.activation=null", "model.activations=[tanh,relu,sigmoid]")
    )
    assert s.model.activations == ["tanh", "relu", "sigmoid"]


BAD = [
    (["model.widths=[128,-3]"], r"^model\.widths\[1\] must be a positive integer, got -3$"),
    (["model.depth=3"], r"^model\.widths clashes with model\.depth/model\.width"),
    (["model.widths=null", "model.depth=3"], r"^model\.width is missing"),
    (["model.activations=[tanh,relu]"], r"^model\.activation clashes with model\.activations"),
    (["model.activation=swish"], r"^model\.activation must be one of linear, .*got 'swish'$"),
    (
        ["model.activation=null", "model.activations=[tanh]"],
        r"^model\.activations must list 2 names .* or 3 .*got 1$",
    ),
    (["model.init=xavier"], r"^model\.init must be one of glorot_uniform.*got 'xavier'$"),
    (["optimizer.lr=-0.1"], r"^optimizer\.lr must be a positive finite number, got -0\.1$"),
    (["optimizer.lr=abc"], r"^optimizer\.lr must be a positive finite number, got 'abc'$"),
    (["optimizer.name=adamm"], r"^optimizer\.name must be one of adagrad, adam, .*'adamm'$"),
    (["optimizer.schedule.name=cosinus"], r"^optimizer\.schedule must be one of"),
    (
        ["optimizer.clip_norm=0"],
        r"^optimizer\.clip_norm must be a positive finite number or null, got 0$",
    ),
    (["optimizer=sgd", "optimizer.nesterov=true"], r"^optimizer\.nesterov"),
    (["dataset.name=mnist"], r"^dataset\.name must be one of blobs, .*got 'mnist'$"),
    (["dataset=moons", "dataset.noise=-1"], r"^dataset\.noise must be"),
    (["dataset.val_size=0.6", "dataset.test_size=0.5"], r"^dataset\.val_size \+ dataset"),
    (["backend.dtype=float16"], r"^backend\.dtype must be one of float32, float64, got"),
    (["backend.name=jax"], r"^backend\.name must be one of numpy, cupy, torch, .*'jax'$"),
    (["backend.device=cuda"], r"^backend\.device must be cpu for backend numpy, got 'cuda'$"),
    (["backend.jit=sometimes"], r"^backend\.jit must be one of auto, true, false, got 'some"),
    (["trainer.epochs=0"], r"^trainer\.epochs must be a positive integer, got 0$"),
    (["trainer.batch_size=1.5"], r"^trainer\.batch_size must be a positive integer, got 1\.5$"),
    (["trainer.objective=val/f1"], r"^trainer\.objective must be one of val/loss, .*'val/f1'$"),
    (["trainer.direction=up"], r"^trainer\.direction must be one of minimize, maximize"),
    (["trainer.early_stopping.monitor=loss"], r"^trainer\.early_stopping\.monitor must be"),
    (
        ["trainer.shuffle=maybe"],
        r"^trainer\.shuffle must be a bool \(true or false\), got 'maybe'$",
    ),
    (
        ["logger.direct_sqlite=maybe"],
        r"^logger\.direct_sqlite must be a bool \(true or false\), got",
    ),
    (["logger.name=wandb"], r"^logger\.name must be one of mlflow, none, got 'wandb'$"),
    (["logger.experiment_name=''"], r"^logger\.experiment_name must be a non-empty string"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(composed(*overrides))
    text = str(info.value)
    assert "\n" not in text
    assert re.search(message, text), text


def test_readme_python_example_runs(capsys) -> None:
    """The README's Python API example is real code: run it."""
    readme = (CONF.parent / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy")[1])
    assert accuracy > 0.95


# ------------------------------------------------------------- declared once, checked unbuilt


def _yaml(group: str, option: str) -> dict:
    import yaml

    values = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    values.pop("defaults", None)
    return values


def test_yaml_defaults_are_the_declared_defaults() -> None:
    """A key left out of a config gets its declared default: the YAML files say the same."""
    from mlpx.app import config
    from mlpx.backend import DEVICES
    from mlpx.data import DATASETS, SPLIT_PARAMS

    declared = {
        ("trainer", "default"): config.TRAINER,
        ("logger", "mlflow"): config.LOGGER,
        ("backend", "numpy"): config.BACKEND,
        ("sweep", "default"): config.SWEEP,
    }
    for (group, option), params in declared.items():
        values = _yaml(group, option)
        for key, param in params.items():
            if (group, key) == ("backend", "device"):  # null: the backend's first device
                assert values[key] == DEVICES[values["name"]][0]
            elif key in values:
                assert values[key] == param.default, f"{group}/{option}.yaml {key}"
    es = _yaml("trainer", "default")["early_stopping"]
    assert es == {k: p.default for k, p in config.EARLY_STOPPING.items()}
    analysis = _yaml("analysis", "default")
    for key, params in config.ANALYSIS.items():
        if isinstance(params, dict):
            assert analysis[key] == {k: p.default for k, p in params.items()}, key
        else:
            assert analysis[key] == params.default, key
    model = _yaml("model", "default")
    assert (model["init"], model["init_std"]) == (
        config.MODEL["init"].default,
        config.MODEL["init_std"].default,
    )
    for option in [f.stem for f in sorted((CONF / "dataset").glob("*.yaml"))]:
        values = _yaml("dataset", option)
        name = values.pop("name")
        own = {k: p.default for k, p in {**SPLIT_PARAMS, **DATASETS[name]}.items()}
        assert values == own, f"dataset/{option}.yaml"


def test_optimizer_yaml_hyperparameters_are_declared() -> None:
    from mlpx.nn.optim import OPTIMIZERS

    for f in sorted((CONF / "optimizer").glob("[!_]*.yaml")):
        values = _yaml("optimizer", f.stem)
        declared = OPTIMIZERS[values.pop("name")].HYPERPARAMETERS
        assert set(values) <= set(declared), f.name
        for key, value in values.items():
            if key != "lr":  # each option file picks its own learning rate
                default = declared[key].default
                assert value == (list(default) if isinstance(default, tuple) else default), (
                    f"{f.name}: {key}"
                )


def test_checking_a_config_imports_nothing_heavy_and_builds_nothing() -> None:
    """No torch, Numba, scikit-learn or MLflow, no optimizer or network: backend=torch and
    backend.jit=true are checked by value (the run reports what is missing)."""
    import json
    import subprocess
    import sys

    cfgs = [
        composed("backend=torch", "dataset=moons", "optimizer=rmsprop"),
        composed(
            "backend.jit=true", "optimizer.schedule.name=cosine", "optimizer.schedule.T_max=9"
        ),
    ]
    code = (
        "import json, sys\n"
        "import mlpx.nn.model, mlpx.nn.optim\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('built during a check')\n"
        "mlpx.nn.optim.Optimizer.__init__ = refuse\n"
        "mlpx.nn.model.MLP.__init__ = refuse\n"
        "from mlpx.app.config import settings_from_dict\n"
        "torch, jit = (settings_from_dict(c) for c in json.loads(sys.stdin.read()))\n"
        "assert torch.backend.name == 'torch' and jit.backend.jit == 'true'\n"
        "heavy = ('torch', 'numba', 'sklearn', 'mlflow', 'hydra', 'omegaconf', 'mlpx.fast')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(cfgs),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backend=cupy", "backend.device=gpu"], r"^backend\.device must be one of cuda, cuda:N"),
        (["backend.device=cuda"], r"^backend\.device must be cpu for backend numpy, got 'cuda'$"),
        (["backend=torch", "backend.device=tpu"], r"^backend\.device must be one of cpu, cuda,"),
    ],
)
def test_devices_are_checked_by_their_spelling(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(composed(*overrides))
    assert settings_from_dict(composed("backend=torch", "backend.device=cuda:1"))


def test_a_backend_that_is_not_there_is_reported_when_the_run_builds() -> None:
    """The same one-line messages as before, from the code that builds the backend."""
    from mlpx.app.build import build_backend

    s = settings_from_dict(composed("backend=cupy"))
    if _cuda_visible():
        assert build_backend(s.backend)[0].device_name == "cuda:0"
        return
    with pytest.raises(ValueError, match=r"^(backend 'cupy' needs CuPy: pip install|no CUDA)"):
        build_backend(s.backend)


def test_the_key_reference_is_generated_from_the_declarations() -> None:
    """docs/config.md is tools/make_help.py's output: every key, accepted, default, doc."""
    path = CONF.parent / "tools" / "make_help.py"
    spec = importlib.util.spec_from_file_location("mlpx_make_help", path)
    make_help = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_help)
    text = (CONF.parent / "docs" / "config.md").read_text()
    assert text == make_help.config_reference(), "run: python tools/make_help.py"
    for key in ("trainer.epochs", "optimizer.betas", "dataset.noise", "analysis.gradcheck.eps"):
        assert f"| `{key}` |" in text, key


def test_the_constraints_the_config_adds_to_mlpx_checks() -> None:
    from mlpx.checks import Const, FolderPath, Integer, ListOf, OneOf, Optional, Switch, Text

    widths = Optional(ListOf(Integer(low=1), plural="positive integers"))
    assert widths.check("w", (3, 4)) == [3, 4] and widths.check("w", None) is None
    with pytest.raises(ValueError, match=r"^w\[1\] must be a positive integer, got 0$"):
        widths.check("w", [3, 0])  # the item's own message, not the list's
    with pytest.raises(ValueError, match=r"^w must be a list of positive integers or null, got"):
        widths.check("w", "3,4")
    version = OneOf((Const("active"), Integer(low=1)))
    assert version.check("v", "active") == "active" and version.check("v", 2) == 2
    with pytest.raises(ValueError, match=r"^v must be 'active' or a positive integer, got"):
        version.check("v", "latest")
    with pytest.raises(ValueError, match=r"^c must be 1, got True$"):
        Const(1).check("c", True)  # a bool is not the number 1
    assert [Switch().check("j", v) for v in (True, "AUTO", "false")] == ["true", "auto", "false"]
    with pytest.raises(ValueError, match=r"^j must be one of auto, true, false, got 'on'$"):
        Switch().check("j", "on")
    with pytest.raises(ValueError, match=r"^t must be a URI string, got '  '$"):
        Text("a URI string").check("t", "  ")
    assert FolderPath().check("d", "~/x").endswith("/x") and "~" not in FolderPath().check("d", "~")


def test_build_makes_what_the_settings_say() -> None:
    """mlpx.app.build: the one settings -> objects assembly (the CLI and experiments/)."""
    import numpy as np

    from mlpx.app.build import build, build_model, run_tags

    s = settings_from_dict(
        composed("dataset=iris", "model.widths=[8]", "optimizer=sgd", "backend.jit=false")
    )
    built = build(s)
    assert (built.data.name, built.data.n_features, built.data.n_classes) == ("iris", 4, 3)
    assert built.model.sizes == [4, 8, 3] and built.model.dtype == "float64"
    assert type(built.optimizer).__name__ == "SGD" and built.optimizer.base_lr == s.optimizer.lr
    assert built.jit is False and built.backend.device_name == "cpu"
    again = build_model(s, built.data)  # a fresh Generator of trainer.seed: the same weights
    for w, w2 in zip(built.model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(w, w2)
    tags = run_tags(s, built)
    assert {k: tags[k] for k in ("dataset", "backend", "device", "optimizer", "jit")} == {
        "dataset": "iris",
        "backend": "numpy",
        "device": "cpu",
        "optimizer": "sgd",
        "jit": "false",
    }


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("optimizer=adamm", "optimizer=adamm: optimizer has no option 'adamm'; its options: "),
        ("optimizer=adamm", "rmsprop, sgd; did you mean adam?"),
        ("trainer.epoch=5", "trainer.epoch is not a config key; did you mean trainer.epochs?"),
        ("trainr.epochs=5", "trainr.epochs is not a config key; did you mean trainer.epochs?"),
        ("trainer.foo=1", "trainer.foo is not a config key; the keys of trainer: batch_size, "),
        ("~trainer.epoch", "trainer.epoch is not a config key; did you mean trainer.epochs?"),
        ("optimzer=adam", "optimzer is not a config group or key; accepted: model, optimizer, "),
        ("optimzer=adam", "; did you mean optimizer?"),
        ("dataset.noise=0.3", "dataset.noise is not a key of the chosen dataset: it belongs to "),
        ("model.widths=[1,", "cannot parse 'model.widths=[1,': no viable alternative at input"),
    ],
)
def test_composition_errors_are_classified_by_type(override: str, line: str) -> None:
    from hydra.errors import CompactHydraException

    from mlpx.app.cli import composition_error

    with pytest.raises(CompactHydraException) as info:
        composed(override)
    assert line in composition_error(info.value)
    assert "_schedule" not in composition_error(info.value)  # not an option, a shared file
    assert "\n" not in composition_error(info.value)


def test_a_key_of_another_option_of_the_group_is_named_so() -> None:
    """logger.log_figures exists for logger=mlflow, not logger=none: no "did you mean" itself."""
    from hydra.errors import CompactHydraException

    from mlpx.app.cli import composition_error

    with pytest.raises(CompactHydraException) as info:
        composed("logger=none", "logger.log_figures=false")
    line = composition_error(info.value)
    assert "logger.log_figures is not a key of the chosen logger option" in line
    assert "did you mean" not in line


def test_a_missing_plugin_names_the_extra_to_install() -> None:
    from hydra.errors import MissingConfigException

    from mlpx.app.messages import composition_error

    for group, option, package in [
        ("hydra/launcher", "joblib", "hydra-joblib-launcher"),
        ("hydra/sweeper", "optuna", "mlpx_optuna_sweeper (shipped with mlpx; install mlpx again)"),
        ("hydra/launcher", "submitit_slurm", "hydra-submitit-launcher"),
    ]:
        exc = MissingConfigException(
            f"In 'hydra/config': Could not find '{group}/{option}'",
            missing_cfg_file=f"{group}/{option}",
            options=["basic"] if group == "hydra/launcher" else None,
        )
        assert composition_error(exc) == (
            f"{group}={option} needs the Hydra plugin {package}, which is not installed: "
            "pip install 'mlpx[sweep]'"
        )


def test_private_files_and_yaml_errors_are_named(tmp_path: Path) -> None:
    import yaml

    from mlpx.app.messages import composition_error, private_option

    assert private_option("optimizer=_schedule", CONF).startswith(
        "optimizer=_schedule: _schedule.yaml is shared by the options of optimizer, not an "
        "option itself; its options: adagrad, adam,"
    )
    assert private_option("optimizer=adam", CONF) is None
    assert private_option("optimizer._x=1", CONF) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n\tepochs: 2\n")
    with bad.open() as f, pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load(f)
    assert composition_error(info.value).startswith(
        f"{bad}:2:1: not valid YAML: found character '\\t' that cannot start any token"
    )


def test_a_bad_value_is_traced_to_the_file_that_set_it(tmp_path: Path) -> None:
    from mlpx.app.messages import config_source

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ntrainer:\n  epochs: 0\n"
    )
    choices = {"model": "default", "trainer": "default", "experiment": "mine"}
    folders = [str(CONF), str(tmp_path)]
    mine = str(tmp_path / "experiment" / "mine.yaml")
    assert config_source("trainer.epochs", choices, folders, []) == mine
    assert config_source("trainer.epochs", choices, folders, ["trainer.epochs=0"]) is None
    assert config_source("trainer.seed", choices, folders, []) == str(CONF / "trainer/default.yaml")
    assert config_source("model.widths[1]", choices, folders, []) == str(
        CONF / "model" / "default.yaml"
    )
    assert config_source("logger.name", choices, folders, []) is None  # logger not chosen


def test_unknown_optimizer_keys_list_what_the_rule_accepts() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(composed("+optimizer.momentum=0.9"))
    assert str(info.value) == (
        "optimizer.momentum is not a hyper-parameter of adam (a hyper-parameter of momentum, "
        "nesterov, rmsprop, sgd); accepted: lr, betas, eps, weight_decay, amsgrad, schedule, "
        "clip_norm"
    )


@pytest.mark.parametrize(
    ("overrides", "suggestion"),
    [
        (["+trainer.epoch=5"], "; did you mean trainer.epochs?"),
        (["dataset=moons", "+dataset.nois=0.1"], "; did you mean dataset.noise?"),
        (["+optimizer.bettas=[0.9,0.99]"], "; did you mean optimizer.betas?"),
        (["+analysis.gradcheck.samplse=3"], "; did you mean analysis.gradcheck.samples?"),
        (["+trainer.zzz=5"], None),
    ],
)
def test_an_added_unknown_key_gets_the_nearest_name(overrides: list[str], suggestion) -> None:
    from mlpx.app.messages import with_suggestion

    with pytest.raises(ConfigError) as info:
        settings_from_dict(composed(*overrides))
    line = with_suggestion(str(info.value))
    assert "; accepted: " in line
    if suggestion is None:
        assert line == str(info.value)
    else:
        assert line == str(info.value) + suggestion

"""Every config key, declared once: its check, default and doc; a composed config -> settings.

Hydra composes ``conf/``; :func:`settings_from_dict` turns the result into the dataclasses
below. Each group's keys are declared here as :class:`mlpx.checks.Param`\\ s (``MODEL``,
``BACKEND``, ``TRAINER``, ``LOGGER``, ``ANALYSIS``, ``SWEEP``, ...); the dataset's and the
optimizer's own parameters are the declarations of :mod:`mlpx.data` (``DATASETS``,
``SPLIT_PARAMS``), :mod:`mlpx.nn.optim` and :mod:`mlpx.nn.schedules`, read from there. A
declared default is what a key left out of the config gets; ``tests/test_config.py`` checks
that the YAML files of ``conf/`` say the same.

Every value is checked where it enters, with one line that names the key as users write it
and what is accepted (``model.widths[1] must be a positive integer, got -3``). Checking
imports nothing heavy and builds nothing: no Hydra, scikit-learn, MLflow, torch or Numba,
no optimizer or network. The backend and ``backend.jit`` are checked by value; whether the
library is installed, the GPU visible or Numba loadable is found out when the run starts,
by the code that builds them (:mod:`mlpx.app.build`), with the same one-line messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpx.backend import BACKENDS, DTYPES, BackendError, check_device
from mlpx.checks import (
    Choice,
    Flag,
    Integer,
    ListOf,
    Number,
    Optional,
    Param,
    Switch,
    Text,
    check_params,
)
from mlpx.data import (
    DATASET_NAME,
    DATASETS,
    SPLIT_PARAMS,
    check_dataset_params,
    check_split_options,
)
from mlpx.nn.activations import ACTIVATIONS
from mlpx.nn.init import INITIALIZERS
from mlpx.nn.optim import OPTIMIZERS, check_hyperparameters
from mlpx.nn.schedules import SCHEDULES
from mlpx.train import EarlyStopping, TrainerSettings

LOGGERS = ("mlflow", "none")
MODES = ("train", "gradcheck")
METRICS = ("val/loss", "val/accuracy", "train/loss", "train/accuracy")
OBJECTIVES = (*METRICS, "test/loss", "test/accuracy")
DIRECTIONS = ("minimize", "maximize")

_POSITIVE = Number(low=0, low_open=True)


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key."""


def _checked(
    group: str,
    declared: Mapping[str, Param],
    section: Mapping[str, Any],
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``check_params`` for config group ``group`` (a dotted path); ConfigError on failure.
    ``extra``: sub-groups the caller checks itself (accepted, left out of the result)."""
    try:
        given = {k: v for k, v in section.items() if k not in extra}
        return check_params(f"setting of {group}", declared, given, prefix=f"{group}.", extra=extra)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _mapping(section: Any, key: str, what: str = "a mapping") -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{key} must be {what}, got {section!r}")
    return dict(section)


# ---------------------------------------------------------------------------------- model

MODEL: dict[str, Param] = {
    "widths": Param(
        Optional(ListOf(Integer(low=1), plural="positive integers")),
        None,
        "hidden widths [p_1, ..., p_(L-1)] (or null and depth + width)",
    ),
    "depth": Param(Optional(Integer(low=0)), None, "shorthand: this many hidden layers ..."),
    "width": Param(Optional(Integer(low=1)), None, "... of this width"),
    "activation": Param(
        Optional(Choice(tuple(ACTIVATIONS))), None, "every hidden layer's (output: linear)"
    ),
    "activations": Param(
        Optional(ListOf(Choice(tuple(ACTIVATIONS)), plural="activation names")),
        None,
        "one per hidden layer, or per layer with the output's",
    ),
    "init": Param(Choice(tuple(INITIALIZERS)), "glorot_uniform", "weight initialisation"),
    "init_std": Param(_POSITIVE, 0.01, "standard deviation of init=normal"),
}


@dataclass(frozen=True)
class ModelSettings:
    """``model`` group: hidden widths, activations (L names, output included), init."""

    widths: list[int]
    activations: list[str]
    init: str = MODEL["init"].default
    init_std: float = MODEL["init_std"].default

    def sizes(self, n_features: int, n_classes: int) -> list[int]:
        """``[d, p_1, ..., p_(L-1), C]``."""
        return [n_features, *self.widths, n_classes]

    @property
    def tag(self) -> str:
        """Short name for run names: ``w128x64-relu``."""
        hidden = self.activations[:-1]
        act = hidden[0] if hidden and len(set(hidden)) == 1 else "-".join(hidden) or "linear"
        widths = "x".join(map(str, self.widths)) or "0"
        return f"w{widths}-{act}"


def model_settings(m: Mapping[str, Any]) -> ModelSettings:
    """Resolve ``widths`` vs ``depth`` + ``width`` and ``activation`` vs ``activations``."""
    m = _checked("model", MODEL, m)
    widths, depth, width = m["widths"], m["depth"], m["width"]
    if widths is not None and (depth is not None or width is not None):
        raise ConfigError(
            "model.widths clashes with model.depth/model.width: give the list or the "
            "shorthand, not both (e.g. model.widths=null model.depth=3 model.width=64)"
        )
    if widths is None:
        if depth is None or width is None:
            missing = "model.depth" if depth is None else "model.width"
            raise ConfigError(
                f"{missing} is missing: give model.widths=[...] or both model.depth and model.width"
            )
        widths = [width] * depth
    activation, activations = m["activation"], m["activations"]
    n_hidden = len(widths)
    if activation is not None and activations is not None:
        raise ConfigError(
            "model.activation clashes with model.activations: give one name for every hidden "
            "layer or a list, not both (e.g. model.activation=null model.activations=[...])"
        )
    if activations is None:
        if activation is None:
            raise ConfigError("model.activation is missing: give a name or model.activations")
        names = [activation] * n_hidden + ["linear"]
    else:
        if len(activations) not in (n_hidden, n_hidden + 1):
            raise ConfigError(
                f"model.activations must list {n_hidden} names (one per hidden layer) or "
                f"{n_hidden + 1} (the output layer too), got {len(activations)}"
            )
        names = activations + ["linear"] * (len(activations) == n_hidden)
    return ModelSettings(widths=widths, activations=names, init=m["init"], init_std=m["init_std"])


# ------------------------------------------------------------------------------ optimizer


OPTIMIZER_NAME = Param(Choice(tuple(sorted(OPTIMIZERS))), doc="the update rule", required=True)
CLIP_NORM = Param(Optional(_POSITIVE), None, "clip the global gradient norm to this; null: off")


@dataclass(frozen=True)
class OptimizerSettings:
    """``optimizer`` group: registry name, torch-style hyper-parameters, schedule, clipping."""

    name: str
    lr: float
    hparams: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    clip_norm: float | None = None

    @property
    def tag(self) -> str:
        return f"{self.name}-lr{self.lr:g}"


def _known_hyperparameters(name: str, given: Mapping[str, Any]) -> None:
    """An unknown key of the optimizer group: what ``name`` accepts, and which rules have it."""
    accepted = [*OPTIMIZERS[name].HYPERPARAMETERS, "schedule", "clip_norm"]
    for key in given:
        if key not in accepted:
            owners = sorted(n for n, c in OPTIMIZERS.items() if key in c.HYPERPARAMETERS)
            has = f" (a hyper-parameter of {', '.join(owners)})" if owners else ""
            raise ConfigError(
                f"optimizer.{key} is not a hyper-parameter of {name}{has}; accepted: "
                f"{', '.join(accepted)}"
            )


def optimizer_settings(o: Mapping[str, Any]) -> OptimizerSettings:
    """Check the optimizer group against the declarations of :mod:`mlpx.nn.optim` and
    :mod:`mlpx.nn.schedules` (``check_hyperparameters``): nothing is built."""
    o = dict(o)
    name = o.pop("name", None)
    if "jit" in o:  # accepted by check_hyperparameters, but the config has one jit switch
        raise ConfigError("optimizer.jit is not a setting of optimizer: use backend.jit")
    schedule = o.get("schedule")
    if isinstance(schedule, Mapping):  # unused keys of the shared schedule block are null
        schedule = {k: v for k, v in schedule.items() if v is not None}
        o["schedule"] = schedule
        if schedule.get("name", "constant") == "constant" and len(schedule) <= 1:
            o["schedule"] = schedule = None
    try:
        name = OPTIMIZER_NAME.check("optimizer.name", name)
        _known_hyperparameters(name, o)
        clip = CLIP_NORM.check("optimizer.clip_norm", o.pop("clip_norm", None))
        values = check_hyperparameters(name, o, prefix="optimizer.")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    hparams = {k: v for k, v in values.items() if k not in ("lr", "schedule", "clip_norm", "jit")}
    return OptimizerSettings(
        name=name,
        lr=values["lr"],
        hparams=hparams,
        schedule=schedule,
        clip_norm=clip,
    )


# -------------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class DatasetSettings:
    """``dataset`` group: registry name, its own parameters (``mlpx.data.DATASETS``), the
    split (``mlpx.data.SPLIT_PARAMS``)."""

    name: str
    params: dict[str, Any]
    val_size: float = SPLIT_PARAMS["val_size"].default
    test_size: float = SPLIT_PARAMS["test_size"].default
    seed: int = SPLIT_PARAMS["seed"].default
    standardize: bool = SPLIT_PARAMS["standardize"].default


def dataset_settings(d: Mapping[str, Any]) -> DatasetSettings:
    """Check the dataset group against :mod:`mlpx.data`'s declarations (nothing is loaded)."""
    split_keys = ("name", *SPLIT_PARAMS)
    try:
        params = check_dataset_params(d.get("name"), d, extra=split_keys)
        split = {k: d[k] for k in SPLIT_PARAMS if k in d}
        split = check_split_options(**{k: p.default for k, p in SPLIT_PARAMS.items()} | split)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return DatasetSettings(name=d["name"], params=params, **split)


# -------------------------------------------------------------------------------- backend

BACKEND: dict[str, Param] = {
    "name": Param(Choice(BACKENDS), "numpy", "array library: numpy, cupy, torch, ..."),
    "dtype": Param(Choice(DTYPES), "float64", "floating-point type of every array"),
    "device": Param(Optional(Text("a device name")), None, "null: the backend's first device"),
    "jit": Param(Switch(), "auto", "NumPy: the compiled kernels (Numba)"),
}


@dataclass(frozen=True)
class BackendSettings:
    """``backend`` group: where the arrays live and their dtype (checked by value: whether
    the library is installed and the device visible is found out when the run starts)."""

    name: str = BACKEND["name"].default
    dtype: str = BACKEND["dtype"].default
    device: str = "cpu"
    jit: str = BACKEND["jit"].default  # NumPy: compiled kernels (Numba) auto | true | false


def _device(name: str, device: str | None) -> str:
    """The device by its spelling (:func:`mlpx.backend.check_device`); None: the default."""
    try:
        return check_device(name, device)
    except BackendError as exc:
        raise ConfigError(str(exc)) from None


def backend_settings(b: Mapping[str, Any]) -> BackendSettings:
    """Check the backend group by value: no library is imported, no kernel compiled."""
    b = _checked("backend", BACKEND, b)
    return BackendSettings(
        name=b["name"], dtype=b["dtype"], device=_device(b["name"], b["device"]), jit=b["jit"]
    )


# -------------------------------------------------------------------------------- trainer

EARLY_STOPPING: dict[str, Param] = {
    "patience": Param(Integer(low=0), 5, "evaluations without gain before stopping; 0: off"),
    "min_delta": Param(Number(low=0), 0.0, "the least change that counts as a gain"),
    "monitor": Param(Choice(METRICS), "val/loss", "the metric watched"),
    "restore_best": Param(Flag(), True, "end with the best evaluation's weights"),
}

TRAINER: dict[str, Param] = {
    "epochs": Param(Integer(low=1), 30, "passes over the training split"),
    "batch_size": Param(Integer(low=1), 32, "samples per optimizer step"),
    "seed": Param(Integer(low=0), 0, "seeds init and batching (one Generator)"),
    "shuffle": Param(Flag(), True, "a new batch order every epoch"),
    "eval_every": Param(Integer(low=1), 1, "epochs between evaluations"),
    "log_every_n_steps": Param(Integer(low=1), 50, "steps between train/gradient metrics"),
    "objective": Param(Choice(OBJECTIVES), "val/accuracy", "what a run returns to sweepers"),
    "direction": Param(Choice(DIRECTIONS), "maximize", "whether the objective is minimised"),
    "progress": Param(Switch(), "auto", "the progress bar (auto: on a terminal)"),
    "checkpoint_every": Param(Integer(low=0), 5, "epochs between checkpoints; 0: at the end"),
    "checkpoint_min_seconds": Param(Number(low=0), 10.0, "min. seconds between checkpoints"),
    "keep_checkpoints": Param(Integer(low=1), 3, "checkpoints kept"),
    "resume": Param(
        Optional(Text("a path, an MLflow run id")), None, "a checkpoint, folder or run id"
    ),
}


def trainer_settings(t: Mapping[str, Any]) -> TrainerSettings:
    """Check the trainer group (``early_stopping`` a sub-group of its own)."""
    values = _checked("trainer", TRAINER, t, extra=("early_stopping",))
    es = _mapping(t.get("early_stopping"), "trainer.early_stopping")
    es = _checked("trainer.early_stopping", EARLY_STOPPING, es)
    return TrainerSettings(**values, early_stopping=EarlyStopping(**es))


# --------------------------------------------------------------------------------- logger

LOGGER: dict[str, Param] = {
    "name": Param(Choice(LOGGERS), "mlflow", "mlflow, or none: train and print only"),
    "tracking_uri": Param(
        Optional(Text("a URI string")), None, "null: MLFLOW_TRACKING_URI, else MLflow's default"
    ),
    "experiment_name": Param(Text(), "mlpx", "the MLflow experiment"),
    "run_name": Param(Optional(Text("a run name")), None, "null: what varies"),
    "log_grad_norms": Param(Flag(), True, "per-layer gradient norms every log_every_n_steps"),
    "log_figures": Param(Flag(), True, "learning curves and analysis figures"),
    "direct_sqlite": Param(Flag(), False, "opt-in: metric values straight into SQLite's tables"),
    "log_model": Param(Flag(), True, "the trained network as the MLflow model 'model' of the run"),
    "register_model": Param(Optional(Text("a model name")), None, "register the model under it"),
    "system_metrics": Param(Flag(), False, "MLflow's CPU/memory/GPU metrics (needs psutil)"),
}


@dataclass(frozen=True)
class LoggerSettings:
    """``logger`` group: ``mlflow`` or ``none``, and where MLflow writes."""

    name: str = LOGGER["name"].default
    tracking_uri: str | None = None
    experiment_name: str = LOGGER["experiment_name"].default
    run_name: str | None = None
    log_grad_norms: bool = LOGGER["log_grad_norms"].default
    log_figures: bool = LOGGER["log_figures"].default
    direct_sqlite: bool = LOGGER["direct_sqlite"].default
    log_model: bool = LOGGER["log_model"].default
    register_model: str | None = None
    system_metrics: bool = LOGGER["system_metrics"].default


def logger_settings(lg: Mapping[str, Any]) -> LoggerSettings:
    lg = dict(lg)
    if lg.get("run_name") is not None and not isinstance(lg["run_name"], str):
        lg["run_name"] = str(lg["run_name"])  # logger.run_name=42 is a name too
    return LoggerSettings(**_checked("logger", LOGGER, lg))


# ------------------------------------------------------------------------------- analysis

SANITY_CHECKS: dict[str, Param] = {
    "enabled": Param(Flag(), True, "run the checks before training"),
    "loss_tolerance": Param(_POSITIVE, 0.5, "initial loss within this * ln C of ln C"),
    "overfit_samples": Param(Integer(1, 10_000), 20, "samples a copy of the network must fit"),
    "overfit_steps": Param(Integer(1, 100_000), 1000, "full-batch Adam steps it gets"),
}
GRADCHECK: dict[str, Param] = {
    "samples": Param(Integer(1, 10_000), 8, "training rows checked"),
    "eps": Param(Number(0, 0.01, low_open=True, high_open=True), 1e-6, "finite-difference step"),
    "threshold": Param(_POSITIVE, 1e-6, "the largest relative error that passes"),
    "max_params_per_layer": Param(
        Optional(Integer(low=1)), 200, "entries checked per array; null: all"
    ),
}
ADVERSARIAL: dict[str, Param] = {
    "enabled": Param(Flag(), False, "FGSM accuracy on the test split"),
    "epsilons": Param(
        ListOf(Number(low=0), plural="non-negative numbers"),
        [0.0, 0.05, 0.1, 0.2, 0.3],
        "perturbation sizes, in standardised units",
    ),
    "clip": Param(Flag(), True, "keep inputs in the training range"),
}
CLASS_VISUALISATION: dict[str, Param] = {
    "enabled": Param(Flag(), False, "the input that maximises each class's logit"),
    "steps": Param(Integer(1, 100_000), 100, "projected gradient ascent steps"),
    "lr": Param(_POSITIVE, 0.1, "each step moves lr * norm_bound"),
    "norm_bound": Param(Optional(_POSITIVE), None, "||x||_2 bound; null: sqrt(d)"),
}
#: analysis key -> its declarations: a flag, or a sub-group of its own.
ANALYSIS: dict[str, Param | dict[str, Param]] = {
    "health_metrics": Param(Flag(), True, "per-layer health metrics while training"),
    "sanity_checks": SANITY_CHECKS,
    "gradcheck": GRADCHECK,
    "saliency": Param(Flag(), False, "|delta_x| maps of image data"),
    "adversarial": ADVERSARIAL,
    "class_visualisation": CLASS_VISUALISATION,
    "figures": Param(Flag(), False, "the analysis figures"),
}


def _default(declared: dict[str, Param], key: str) -> Any:
    value = declared[key].default
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class SanityChecks:
    enabled: bool = _default(SANITY_CHECKS, "enabled")
    loss_tolerance: float = _default(SANITY_CHECKS, "loss_tolerance")
    overfit_samples: int = _default(SANITY_CHECKS, "overfit_samples")
    overfit_steps: int = _default(SANITY_CHECKS, "overfit_steps")


@dataclass(frozen=True)
class GradcheckSettings:
    samples: int = _default(GRADCHECK, "samples")
    eps: float = _default(GRADCHECK, "eps")
    threshold: float = _default(GRADCHECK, "threshold")
    max_params_per_layer: int | None = _default(GRADCHECK, "max_params_per_layer")


@dataclass(frozen=True)
class Adversarial:
    enabled: bool = _default(ADVERSARIAL, "enabled")
    epsilons: tuple[float, ...] = _default(ADVERSARIAL, "epsilons")
    clip: bool = _default(ADVERSARIAL, "clip")


@dataclass(frozen=True)
class ClassVisualisation:
    enabled: bool = _default(CLASS_VISUALISATION, "enabled")
    steps: int = _default(CLASS_VISUALISATION, "steps")
    lr: float = _default(CLASS_VISUALISATION, "lr")
    norm_bound: float | None = _default(CLASS_VISUALISATION, "norm_bound")


@dataclass(frozen=True)
class AnalysisSettings:
    """``analysis`` group: what backprop tells you (health metrics, checks, input gradients)."""

    health_metrics: bool = _default(ANALYSIS, "health_metrics")  # type: ignore[arg-type]
    sanity_checks: SanityChecks = field(default_factory=SanityChecks)
    gradcheck: GradcheckSettings = field(default_factory=GradcheckSettings)
    saliency: bool = _default(ANALYSIS, "saliency")  # type: ignore[arg-type]
    adversarial: Adversarial = field(default_factory=Adversarial)
    class_visualisation: ClassVisualisation = field(default_factory=ClassVisualisation)
    figures: bool = _default(ANALYSIS, "figures")  # type: ignore[arg-type]


_SUBGROUPS = {
    "sanity_checks": SanityChecks,
    "gradcheck": GradcheckSettings,
    "adversarial": Adversarial,
    "class_visualisation": ClassVisualisation,
}


def analysis_settings(a: Mapping[str, Any]) -> AnalysisSettings:
    """Check the analysis group (every key typed and in range, unknown keys refused)."""
    flags = {k: p for k, p in ANALYSIS.items() if isinstance(p, Param)}
    out: dict[str, Any] = _checked("analysis", flags, a, extra=tuple(_SUBGROUPS))
    for key, cls in _SUBGROUPS.items():
        section = _mapping(a.get(key), f"analysis.{key}")
        values = _checked(f"analysis.{key}", ANALYSIS[key], section)  # type: ignore[arg-type]
        out[key] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    if out["adversarial"].enabled and not out["adversarial"].epsilons:
        raise ConfigError("analysis.adversarial.epsilons must not be empty when enabled")
    return AnalysisSettings(**out)


# ---------------------------------------------------------------------------------- sweep

SWEEP: dict[str, Param] = {
    "force": Param(Flag(), False, "run jobs whose config already has a FINISHED run"),
    "stop_on_failure": Param(Flag(), False, "the first failing job stops the sweep"),
    "artifact_worker": Param(Flag(), True, "a helper process logs figures and models"),
}


@dataclass(frozen=True)
class SweepSettings:
    """``sweep`` group: how a multirun treats configs already run, and failures."""

    force: bool = SWEEP["force"].default
    stop_on_failure: bool = SWEEP["stop_on_failure"].default
    artifact_worker: bool = SWEEP["artifact_worker"].default


def sweep_settings(sw: Mapping[str, Any]) -> SweepSettings:
    return SweepSettings(**_checked("sweep", SWEEP, sw))


# ------------------------------------------------------------------------------- settings

MODE = Param(Choice(MODES), "train", "train, or gradcheck: every delta vs finite differences")


@dataclass(frozen=True)
class Settings:
    """The whole validated run configuration."""

    model: ModelSettings
    optimizer: OptimizerSettings
    dataset: DatasetSettings
    backend: BackendSettings
    trainer: TrainerSettings
    logger: LoggerSettings
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    mode: str = MODE.default
    sweep: SweepSettings = field(default_factory=SweepSettings)

    def run_name(self) -> str:
        """What varies, e.g. ``adam-lr0.001-w128x64-relu``."""
        return f"{self.optimizer.tag}-{self.model.tag}"


TOP_KEYS = (
    "model",
    "optimizer",
    "dataset",
    "backend",
    "trainer",
    "logger",
    "analysis",
    "mode",
    "experiment",
    "sweep",
)


def _section(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    section = cfg.get(name)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{name} must be a config group (a mapping), got {section!r}")
    return dict(section)


def settings_from_dict(cfg: Mapping[str, Any]) -> Settings:
    """Validate a composed config (plain containers, interpolations resolved)."""
    for key in cfg:
        if key not in TOP_KEYS:
            raise ConfigError(f"{key} is not a config group; accepted: {', '.join(TOP_KEYS)}")
    try:
        mode = MODE.check("mode", cfg.get("mode", MODE.default))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(
        model=model_settings(_section(cfg, "model")),
        optimizer=optimizer_settings(_section(cfg, "optimizer")),
        dataset=dataset_settings(_section(cfg, "dataset")),
        backend=backend_settings(_section(cfg, "backend")),
        trainer=trainer_settings(_section(cfg, "trainer")),
        logger=logger_settings(_section(cfg, "logger")),
        analysis=analysis_settings(_section(cfg, "analysis") if "analysis" in cfg else {}),
        mode=mode,
        sweep=sweep_settings(_section(cfg, "sweep") if "sweep" in cfg else {}),
    )


def declared_keys() -> list[tuple[str, str, Param]]:
    """``(section, key, Param)`` for every config key, as users write them
    (``("trainer", "trainer.epochs", Param(...))``): the source of ``docs/config.md``
    (``tools/make_help.py``). Sections: a group, ``dataset <name>``, ``optimizer <name>``,
    ``optimizer.schedule <name>``."""
    out: list[tuple[str, str, Param]] = [("mode", "mode", MODE)]

    def add(section: str, prefix: str, declared: Mapping[str, Any]) -> None:
        for key, param in declared.items():
            if isinstance(param, Param):
                out.append((section, f"{prefix}.{key}", param))
            else:  # a sub-group
                add(f"{prefix}.{key}", f"{prefix}.{key}", param)

    add("model", "model", MODEL)
    add("optimizer", "optimizer", {"name": OPTIMIZER_NAME, "clip_norm": CLIP_NORM})
    for name, cls in sorted(OPTIMIZERS.items()):
        add(f"optimizer {name}", "optimizer", cls.HYPERPARAMETERS)
    for name, cls in sorted(SCHEDULES.items()):
        add(f"optimizer.schedule {name}", "optimizer.schedule", cls.PARAMS)
    add("dataset", "dataset", {"name": DATASET_NAME, **SPLIT_PARAMS})
    for name, declared in sorted(DATASETS.items()):
        add(f"dataset {name}", "dataset", declared)
    for section, declared in (
        ("backend", BACKEND),
        ("trainer", TRAINER),
        ("trainer.early_stopping", EARLY_STOPPING),
        ("logger", LOGGER),
    ):
        add(section, section, declared)
    add("analysis", "analysis", ANALYSIS)
    add("sweep", "sweep", SWEEP)
    return out

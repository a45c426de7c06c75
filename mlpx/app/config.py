"""Config schemas and value checks: a composed config (a plain dict) -> typed settings.

Hydra composes ``conf/``; :func:`settings_from_dict` turns the result into the dataclasses
below, checking every value where it enters with a one-line message that names the key as
users write it and what is accepted (``model.widths[1] must be a positive integer, got
-3``). Nothing here imports Hydra, scikit-learn or MLflow, so the checks run before any
heavy import, training or logging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlpx.backend import BACKENDS, DTYPES, BackendError, get_backend
from mlpx.fast import kernels
from mlpx.nn.activations import ACTIVATIONS
from mlpx.nn.init import INITIALIZERS
from mlpx.train import EarlyStopping, TrainerSettings

LOGGERS = ("mlflow", "none")
MODES = ("train", "gradcheck")
PROGRESS = ("auto", "true", "false")
METRICS = ("val/loss", "val/accuracy", "train/loss", "train/accuracy")
DIRECTIONS = ("minimize", "maximize")


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key."""


# ------------------------------------------------------------------------------- checks


def _int(key: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(key: str, value: Any, *, positive: bool = False, minimum: float | None = None):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be a number >= {minimum}, got {value!r}")
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _optional_text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a path, an MLflow run id or null, got {value!r}")
    return value


def _choice(key: str, value: Any, accepted: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise ConfigError(f"{key} must be one of {', '.join(accepted)}, got {value!r}")
    return value


def _section(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    section = cfg.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{name} must be a config group (a mapping), got {section!r}")
    return section


def _only(section: dict[str, Any], group: str, accepted: tuple[str, ...]) -> None:
    for key in section:
        if key not in accepted:
            raise ConfigError(
                f"{group}.{key} is not a setting of {group}; accepted: {', '.join(accepted)}"
            )


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class ModelSettings:
    """``model`` group: hidden widths, activations (L names, output included), init."""

    widths: list[int]
    activations: list[str]
    init: str = "glorot_uniform"
    init_std: float = 0.01

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


MODEL_KEYS = ("widths", "depth", "width", "activation", "activations", "init", "init_std")


def model_settings(m: dict[str, Any]) -> ModelSettings:
    """Resolve ``widths`` vs ``depth`` + ``width`` and ``activation`` vs ``activations``."""
    _only(m, "model", MODEL_KEYS)
    widths, depth, width = m.get("widths"), m.get("depth"), m.get("width")
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
        depth = _int("model.depth", depth, minimum=0)
        width = _int("model.width", width, minimum=1)
        widths = [width] * depth
    if not isinstance(widths, list):
        raise ConfigError(f"model.widths must be a list of positive integers, got {widths!r}")
    widths = [_int(f"model.widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]

    activation, activations = m.get("activation"), m.get("activations")
    n_hidden = len(widths)
    if activation is not None and activations is not None:
        raise ConfigError(
            "model.activation clashes with model.activations: give one name for every hidden "
            "layer or a list, not both (e.g. model.activation=null model.activations=[...])"
        )
    if activations is None:
        if activation is None:
            raise ConfigError("model.activation is missing: give a name or model.activations")
        name = _choice("model.activation", activation, list(ACTIVATIONS))
        names = [name] * n_hidden + ["linear"]
    else:
        if not isinstance(activations, list) or len(activations) not in (n_hidden, n_hidden + 1):
            got = len(activations) if isinstance(activations, list) else repr(activations)
            raise ConfigError(
                f"model.activations must list {n_hidden} names (one per hidden layer) or "
                f"{n_hidden + 1} (the output layer too), got {got}"
            )
        names = [
            _choice(f"model.activations[{i}]", a, list(ACTIVATIONS))
            for i, a in enumerate(activations)
        ]
        if len(names) == n_hidden:
            names.append("linear")
    init = _choice("model.init", m.get("init", "glorot_uniform"), list(INITIALIZERS))
    init_std = _number("model.init_std", m.get("init_std", 0.01), positive=True)
    return ModelSettings(widths=widths, activations=names, init=init, init_std=init_std)


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


def optimizer_settings(o: dict[str, Any]) -> OptimizerSettings:
    """Check the optimizer group by building it once (the core checks every argument)."""
    from mlpx.nn.optim import OPTIMIZERS, make_optimizer

    o = dict(o)
    name = _choice("optimizer.name", o.pop("name", None), sorted(OPTIMIZERS))
    lr = _number("optimizer.lr", o.pop("lr", None), positive=True)
    schedule = o.pop("schedule", None)
    clip = o.pop("clip_norm", None)
    if clip is not None:
        clip = _number("optimizer.clip_norm", clip, positive=True)
    if isinstance(schedule, dict):  # unused keys of the shared schedule block are null
        schedule = {k: v for k, v in schedule.items() if v is not None}
        if schedule.get("name", "constant") == "constant" and len(schedule) <= 1:
            schedule = None
    hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in o.items()}
    try:
        make_optimizer(name, lr=lr, schedule=schedule, **hparams)
    except ValueError as exc:
        raise ConfigError(_prefix("optimizer", str(exc))) from None
    return OptimizerSettings(name=name, lr=lr, hparams=hparams, schedule=schedule, clip_norm=clip)


def _prefix(group: str, message: str) -> str:
    """Name the key as users write it: ``lr must ...`` -> ``optimizer.lr must ...``."""
    if message.startswith(f"{group}.") or message.startswith(f"{group} "):
        return message
    return f"{group}.{message}"


@dataclass(frozen=True)
class DatasetSettings:
    """``dataset`` group: registry name, its own parameters, the split."""

    name: str
    params: dict[str, Any]
    val_size: float = 0.15
    test_size: float = 0.15
    seed: int = 0
    standardize: bool = True


def dataset_settings(d: dict[str, Any]) -> DatasetSettings:
    from mlpx.data import check_dataset_params, check_split_options

    d = dict(d)
    name = d.pop("name", None)
    val_size = d.pop("val_size", 0.15)
    test_size = d.pop("test_size", 0.15)
    seed = _int("dataset.seed", d.pop("seed", 0), minimum=0)
    standardize = _bool("dataset.standardize", d.pop("standardize", True))
    try:
        params = check_dataset_params(name, d)
        check_split_options(val_size, test_size, seed)
    except ValueError as exc:
        raise ConfigError(_prefix("dataset", str(exc))) from None
    return DatasetSettings(name, params, float(val_size), float(test_size), seed, standardize)


@dataclass(frozen=True)
class BackendSettings:
    """``backend`` group: where the arrays live and their dtype."""

    name: str = "numpy"
    dtype: str = "float64"
    device: str = "cpu"
    jit: str = "auto"  # NumPy: compiled kernels (Numba) auto | true | false


def backend_settings(b: dict[str, Any]) -> BackendSettings:
    """Check the backend group; the library must be installed and the device visible."""
    _only(b, "backend", ("name", "dtype", "device", "jit"))
    name = _choice("backend.name", b.get("name", "numpy"), BACKENDS)
    dtype = _choice("backend.dtype", b.get("dtype", "float64"), DTYPES)
    try:
        backend = get_backend(name, b.get("device"))
        jit = kernels.check_setting(b.get("jit", "auto"), key="backend.jit")
        kernels.resolve(jit, key="backend.jit")  # true without Numba: say so before the run
    except (BackendError, kernels.JitError) as exc:
        raise ConfigError(str(exc)) from None
    return BackendSettings(name=name, dtype=dtype, device=backend.device_name, jit=jit)


TRAINER_KEYS = (
    "epochs",
    "batch_size",
    "seed",
    "shuffle",
    "eval_every",
    "log_every_n_steps",
    "early_stopping",
    "objective",
    "direction",
    "progress",
    "checkpoint_every",
    "keep_checkpoints",
    "resume",
)
OBJECTIVES = (*METRICS, "test/loss", "test/accuracy")


def trainer_settings(t: dict[str, Any]) -> TrainerSettings:
    _only(t, "trainer", TRAINER_KEYS)
    es = t.get("early_stopping") or {}
    if not isinstance(es, dict):
        raise ConfigError(f"trainer.early_stopping must be a mapping, got {es!r}")
    _only(es, "trainer.early_stopping", ("patience", "min_delta", "monitor", "restore_best"))
    early = EarlyStopping(
        patience=_int("trainer.early_stopping.patience", es.get("patience", 0), minimum=0),
        min_delta=_number("trainer.early_stopping.min_delta", es.get("min_delta", 0.0), minimum=0),
        monitor=_choice("trainer.early_stopping.monitor", es.get("monitor", "val/loss"), METRICS),
        restore_best=_bool("trainer.early_stopping.restore_best", es.get("restore_best", True)),
    )
    progress = t.get("progress", "auto")
    progress = str(progress).lower() if isinstance(progress, bool) else progress
    return TrainerSettings(
        epochs=_int("trainer.epochs", t.get("epochs", 30), minimum=1),
        batch_size=_int("trainer.batch_size", t.get("batch_size", 32), minimum=1),
        seed=_int("trainer.seed", t.get("seed", 0), minimum=0),
        shuffle=_bool("trainer.shuffle", t.get("shuffle", True)),
        eval_every=_int("trainer.eval_every", t.get("eval_every", 1), minimum=1),
        log_every_n_steps=_int("trainer.log_every_n_steps", t.get("log_every_n_steps", 50), 1),
        early_stopping=early,
        objective=_choice("trainer.objective", t.get("objective", "val/accuracy"), OBJECTIVES),
        direction=_choice("trainer.direction", t.get("direction", "maximize"), DIRECTIONS),
        progress=_choice("trainer.progress", progress, PROGRESS),
        checkpoint_every=_int("trainer.checkpoint_every", t.get("checkpoint_every", 5), 0),
        keep_checkpoints=_int("trainer.keep_checkpoints", t.get("keep_checkpoints", 3), 1),
        resume=_optional_text("trainer.resume", t.get("resume")),
    )


@dataclass(frozen=True)
class LoggerSettings:
    """``logger`` group: ``mlflow`` or ``none``, and where MLflow writes."""

    name: str = "mlflow"
    tracking_uri: str | None = None
    experiment_name: str = "mlpx"
    run_name: str | None = None
    log_grad_norms: bool = True
    log_figures: bool = True
    direct_sqlite: bool = True  # metric values straight into a SQLite store's tables


def logger_settings(lg: dict[str, Any]) -> LoggerSettings:
    keys = (
        "name",
        "tracking_uri",
        "experiment_name",
        "run_name",
        "log_grad_norms",
        "log_figures",
        "direct_sqlite",
    )
    _only(lg, "logger", keys)
    name = _choice("logger.name", lg.get("name", "mlflow"), LOGGERS)
    uri = lg.get("tracking_uri")
    if uri is not None and (not isinstance(uri, str) or not uri.strip()):
        raise ConfigError(f"logger.tracking_uri must be a URI string or null, got {uri!r}")
    exp = lg.get("experiment_name", "mlpx")
    if not isinstance(exp, str) or not exp.strip():
        raise ConfigError(f"logger.experiment_name must be a non-empty string, got {exp!r}")
    run_name = lg.get("run_name")
    if run_name is not None and not isinstance(run_name, str):
        run_name = str(run_name)
    return LoggerSettings(
        name=name,
        tracking_uri=uri,
        experiment_name=exp,
        run_name=run_name,
        log_grad_norms=_bool("logger.log_grad_norms", lg.get("log_grad_norms", True)),
        log_figures=_bool("logger.log_figures", lg.get("log_figures", True)),
        direct_sqlite=_bool("logger.direct_sqlite", lg.get("direct_sqlite", True)),
    )


@dataclass(frozen=True)
class SanityChecks:
    enabled: bool = True
    loss_tolerance: float = 0.5
    overfit_samples: int = 20
    overfit_steps: int = 1000


@dataclass(frozen=True)
class GradcheckSettings:
    samples: int = 8
    eps: float = 1e-6
    threshold: float = 1e-6
    max_params_per_layer: int | None = 200


@dataclass(frozen=True)
class Adversarial:
    enabled: bool = True
    epsilons: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    clip: bool = True


@dataclass(frozen=True)
class ClassVisualisation:
    enabled: bool = True
    steps: int = 100
    lr: float = 0.1
    norm_bound: float | None = None


@dataclass(frozen=True)
class AnalysisSettings:
    """``analysis`` group: what backprop tells you (health metrics, checks, input gradients)."""

    health_metrics: bool = True
    sanity_checks: SanityChecks = field(default_factory=SanityChecks)
    gradcheck: GradcheckSettings = field(default_factory=GradcheckSettings)
    saliency: bool = True
    adversarial: Adversarial = field(default_factory=Adversarial)
    class_visualisation: ClassVisualisation = field(default_factory=ClassVisualisation)
    figures: bool = True


def _sub(a: dict[str, Any], name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    section = a.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"analysis.{name} must be a mapping, got {section!r}")
    _only(section, f"analysis.{name}", keys)
    return section


def analysis_settings(a: dict[str, Any]) -> AnalysisSettings:
    """Check the analysis group (every key typed and in range, unknown keys refused)."""
    keys = ("health_metrics", "sanity_checks", "gradcheck", "saliency", "adversarial")
    _only(a, "analysis", (*keys, "class_visualisation", "figures"))
    d = AnalysisSettings()
    sc = _sub(a, "sanity_checks", ("enabled", "loss_tolerance", "overfit_samples", "overfit_steps"))
    gc = _sub(a, "gradcheck", ("samples", "eps", "threshold", "max_params_per_layer"))
    ad = _sub(a, "adversarial", ("enabled", "epsilons", "clip"))
    cv = _sub(a, "class_visualisation", ("enabled", "steps", "lr", "norm_bound"))
    k = "analysis.sanity_checks"
    sanity = SanityChecks(
        enabled=_bool(f"{k}.enabled", sc.get("enabled", True)),
        loss_tolerance=_number(f"{k}.loss_tolerance", sc.get("loss_tolerance", 0.5), positive=True),
        overfit_samples=_int(f"{k}.overfit_samples", sc.get("overfit_samples", 20), 1),
        overfit_steps=_int(f"{k}.overfit_steps", sc.get("overfit_steps", 1000), 1),
    )
    max_params = gc.get("max_params_per_layer", 200)
    grad = GradcheckSettings(
        samples=_int("analysis.gradcheck.samples", gc.get("samples", 8), 1),
        eps=_number("analysis.gradcheck.eps", gc.get("eps", 1e-6), positive=True),
        threshold=_number("analysis.gradcheck.threshold", gc.get("threshold", 1e-6), positive=True),
        max_params_per_layer=None
        if max_params is None
        else _int("analysis.gradcheck.max_params_per_layer", max_params, 1),
    )
    if grad.eps >= 1e-2:
        raise ConfigError(f"analysis.gradcheck.eps must be below 0.01, got {grad.eps:g}")
    eps_list = ad.get("epsilons", list(d.adversarial.epsilons))
    if not isinstance(eps_list, list):
        raise ConfigError(f"analysis.adversarial.epsilons must be a list, got {eps_list!r}")
    epsilons = tuple(
        _number(f"analysis.adversarial.epsilons[{i}]", e, minimum=0.0)
        for i, e in enumerate(eps_list)
    )
    adversarial = Adversarial(
        enabled=_bool("analysis.adversarial.enabled", ad.get("enabled", True)),
        epsilons=epsilons,
        clip=_bool("analysis.adversarial.clip", ad.get("clip", True)),
    )
    if adversarial.enabled and not epsilons:
        raise ConfigError("analysis.adversarial.epsilons must not be empty when enabled")
    bound = cv.get("norm_bound")
    k = "analysis.class_visualisation"
    visual = ClassVisualisation(
        enabled=_bool(f"{k}.enabled", cv.get("enabled", True)),
        steps=_int(f"{k}.steps", cv.get("steps", 100), 1),
        lr=_number(f"{k}.lr", cv.get("lr", 0.1), positive=True),
        norm_bound=None if bound is None else _number(f"{k}.norm_bound", bound, positive=True),
    )
    return AnalysisSettings(
        health_metrics=_bool("analysis.health_metrics", a.get("health_metrics", True)),
        sanity_checks=sanity,
        gradcheck=grad,
        saliency=_bool("analysis.saliency", a.get("saliency", True)),
        adversarial=adversarial,
        class_visualisation=visual,
        figures=_bool("analysis.figures", a.get("figures", True)),
    )


@dataclass(frozen=True)
class SweepSettings:
    """``sweep`` group: how a multirun treats configs already run, and failures."""

    force: bool = False
    stop_on_failure: bool = False


def sweep_settings(sw: dict[str, Any]) -> SweepSettings:
    _only(sw, "sweep", ("force", "stop_on_failure"))
    return SweepSettings(
        force=_bool("sweep.force", sw.get("force", False)),
        stop_on_failure=_bool("sweep.stop_on_failure", sw.get("stop_on_failure", False)),
    )


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
    mode: str = "train"
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


def settings_from_dict(cfg: dict[str, Any]) -> Settings:
    """Validate a composed config (plain containers, interpolations resolved)."""
    for key in cfg:
        if key not in TOP_KEYS:
            raise ConfigError(f"{key} is not a config group; accepted: {', '.join(TOP_KEYS)}")
    return Settings(
        model=model_settings(_section(cfg, "model")),
        optimizer=optimizer_settings(_section(cfg, "optimizer")),
        dataset=dataset_settings(_section(cfg, "dataset")),
        backend=backend_settings(_section(cfg, "backend")),
        trainer=trainer_settings(_section(cfg, "trainer")),
        logger=logger_settings(_section(cfg, "logger")),
        analysis=analysis_settings(cfg["analysis"]) if "analysis" in cfg else AnalysisSettings(),
        mode=_choice("mode", cfg.get("mode", "train"), MODES),
        sweep=sweep_settings(_section(cfg, "sweep") if "sweep" in cfg else {}),
    )

"""The ``mlpx`` command: the only place that talks to Hydra.

config (Hydra) -> settings (:mod:`mlpx.app.config`) -> backend, dataset, MLP, optimizer,
tracker (:mod:`mlpx.app.build`) -> ``train.fit`` -> objective (returned to Hydra's
sweepers). Heavy libraries (scikit-learn, MLflow, matplotlib) are imported only once a run
starts, so ``mlpx --help`` stays quick.
"""

from __future__ import annotations

import gc
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlpx.app.config import ConfigError, Settings, settings_from_dict
from mlpx.app.messages import (
    composition_error,
    config_source,
    help_groups,
    private_option,
    search_folders,
    with_suggestion,
)
from mlpx.app.summary import CONFIG_HASH_TAG


def config_dir() -> str:
    """``conf/`` beside the package (a checkout or editable install) or inside it (wheel)."""
    here = Path(__file__).resolve().parent.parent  # mlpx/
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"mlpx cannot find its conf/ folder next to {here}")


class UserError(Exception):
    """An error in what the user asked for: printed as one line, no traceback."""


def _error_line(message: str) -> str:
    return "mlpx: error: " + " ".join(str(message).split())


def _hydra_context() -> tuple[bool, str | None, str | None, str]:
    """(is multirun, sweep dir, job output dir, the swept values of this job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False, None, None, ""
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return False, None, hc.runtime.output_dir, ""
    from mlpx.app.sweep import job_suffix

    suffix = job_suffix(hc.sweep.dir, list(hc.overrides.task))
    return True, hc.sweep.dir, hc.runtime.output_dir, suffix


def _task_overrides() -> list[str]:
    """Hydra's overrides of this run (of this job, in a sweep)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _search_folders() -> list[str]:
    """The folders of this run's config search path, in Hydra's order."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return [config_dir()]
    sources = HydraConfig.get().runtime.config_sources
    return [str(s.path) for s in sources if s.schema == "file"]


def _choices() -> dict[str, Any]:
    """Group -> chosen option, in the order of the defaults list."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return dict(reversed(list(HydraConfig.get().runtime.choices.items())))


def _with_source(message: str) -> str:
    """A bad value's message, with the file it came from when a config file set it."""
    from hydra.core.hydra_config import HydraConfig

    message = with_suggestion(message)
    key = re.match(r"([\w.\[\]]+) (must be|is not a) ", message)  # one key (not a clash)
    if key is None or not HydraConfig.initialized():
        return message
    hc = HydraConfig.get()
    try:
        where = config_source(key[1], _choices(), _search_folders(), list(hc.overrides.task))
    except OSError:
        where = None
    return f"{message} (set in {where})" if where else message


_HELP_FLAGS = ("--help", "-h")
_help_cache: dict[tuple[str, ...], str] = {}


def _help_groups() -> str:
    """``${mlpx_groups:}`` in the --help template: the groups of this run's search path.

    Hydra resolves the template each time it composes a config (a run composes twice), so
    the listing (~0.3 s of Hydra's config repository) is made only when --help is asked
    for, once per search path; otherwise the text says where to find it.
    """
    if not any(arg in _HELP_FLAGS for arg in sys.argv[1:]):
        return "(mlpx --help lists them)"
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    folders = search_folders(loader)
    key = tuple(folders)
    if key not in _help_cache:
        _help_cache[key] = help_groups(loader, folders)
    return _help_cache[key]


OmegaConf.register_new_resolver("mlpx_groups", _help_groups, replace=True)


def _log_run_files(tracker: Any, cfg: DictConfig, job_dir: str | None) -> None:
    tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    if job_dir:
        overrides = Path(job_dir) / ".hydra" / "overrides.yaml"
        if overrides.is_file():
            tracker.log_artifact(str(overrides), "config")


def _log_figures(tracker: Any, history: dict[str, list[tuple[int, float]]]) -> None:
    """Learning curves and gradient norms: bare ``Figure`` objects (no pyplot to import or
    close; the tracker saves them)."""
    from mlpx.analysis import plots

    epoch_steps = dict(history.get("epoch", []))  # step -> epoch, for per-epoch curves
    by_epoch = {
        k: [(int(epoch_steps[s]), v) for s, v in pts if s in epoch_steps]
        for k, pts in history.items()
        if k in ("train/loss", "train/accuracy", "val/loss", "val/accuracy")
    }
    for name, fig in (
        ("figures/learning_curves.png", plots.learning_curves(by_epoch)),
        ("figures/grad_norms.png", plots.grad_norms(history)),
    ):
        tracker.log_figure(fig, name)


def run(cfg: DictConfig) -> float:
    """Train one configuration; return the objective (``trainer.objective``).

    User errors (bad values, missing data, an unreachable tracking server, divergence)
    raise :class:`UserError` with one line; the MLflow run, if one was started, is ended
    FAILED (or KILLED on Ctrl-C) so nothing is left RUNNING.
    """
    multirun, sweep_dir, job_dir, suffix = _hydra_context()
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve
        raise UserError(f"the config could not be resolved: {exc}") from None
    overlay = container.get("experiment")
    if overlay:  # an experiment file without '# @package _global_': its keys land here
        name = _choices().get("experiment") or "<name>"
        raise UserError(
            f"experiment/{name}.yaml must start with the line '# @package _global_' (it sets "
            f"{', '.join(f'experiment.{k}' for k in overlay)} instead of {', '.join(overlay)})"
        )
    try:
        settings = settings_from_dict(container)
    except ConfigError as exc:
        raise UserError(_with_source(str(exc))) from None

    from mlpx.app.sweep import config_hash, read_sweep_info, reuse_finished_run

    chash = config_hash(container)
    lg = settings.logger
    if multirun and lg.name == "mlflow" and not settings.sweep.force:
        try:
            reused = reuse_finished_run(lg.tracking_uri, lg.experiment_name, chash, sweep_dir)
        except Exception as exc:  # the lookup only saves time: train when it fails
            print(f"mlpx: warning: could not look for a finished run: {exc}", file=sys.stderr)
            reused = None
        if reused is not None:
            return reused[1]

    from mlpx.app import record
    from mlpx.app.build import build, build_tracker, run_tags
    from mlpx.app.record import group_tag
    from mlpx.checkpoint import Checkpointer, CheckpointError
    from mlpx.tracking import TrackingError, flatten
    from mlpx.train import DivergenceError, Interrupted, StopRequest, fit

    try:
        checkpoint = (
            resolve_resume(settings.trainer.resume, settings) if settings.trainer.resume else None
        )
        built = build(settings)
        model, optimizer, data, rng = built.model, built.optimizer, built.data, built.rng
        state = checkpoint.restore(model, optimizer, rng) if checkpoint else None
    except (ValueError, CheckpointError) as exc:
        raise UserError(str(exc)) from None
    resume_run = _reachable_run(checkpoint, settings) if checkpoint else None
    parent = read_sweep_info(sweep_dir).get("parent_run_id") if sweep_dir else None
    try:
        tracker = build_tracker(
            settings,
            {k: v for k, v in flatten(container).items() if v is not None},  # set values only
            tags={**run_tags(settings, built), CONFIG_HASH_TAG: chash, **group_tag(container)},
            parent_run_id=parent,
            suffix=suffix,
            resume_run_id=resume_run,
        )
    except TrackingError as exc:
        raise UserError(str(exc)) from None

    ckpt_dir = Path(job_dir or ".") / "checkpoints"
    checkpointer = Checkpointer(
        ckpt_dir, settings.trainer.checkpoint_every, settings.trainer.keep_checkpoints, tracker
    )
    stop = StopRequest()
    status, error, extras = "FAILED", None, {}
    command = record.reproduce_command(list(_task_overrides()))
    try:
        with _stop_on_signals(stop):
            _log_run_files(tracker, cfg, job_dir)
            extras = record.start_record(settings, tracker, data, model, command)
            if checkpoint is not None:
                tracker.set_tags({"mlpx.resumed_from": str(checkpoint.path)})
                print(
                    f"mlpx: resuming from {checkpoint.path} (epoch {state.epoch}, step "
                    f"{state.step})",
                    file=sys.stderr,
                )
            print(f"mlpx: {settings.run_name()} on {data!r}: {model!r}", file=sys.stderr)
            if settings.mode == "gradcheck":
                value = _gradcheck(settings, model, data, tracker)
                status = "FINISHED"
                return value
            an = settings.analysis
            if an.sanity_checks.enabled and checkpoint is None:
                _sanity_checks(settings, model, data, tracker)
            result = fit(
                model,
                optimizer,
                data,
                settings.trainer,
                tracker,
                rng=rng,
                clip_norm=settings.optimizer.clip_norm,
                log_grad_norms=settings.logger.log_grad_norms,
                checkpointer=checkpointer,
                resume=state,
                stop=stop,
                health_metrics=an.health_metrics,
            )
        draw = settings.logger.log_figures and settings.logger.name != "none"
        if draw:
            _log_figures(tracker, result.history)
        _post_training_analyses(settings, model, data, tracker, result, draw)
        tracker.log_metrics({"objective": result.objective}, step=result.steps)
        tracker.set_tags(
            {"best_epoch": str(result.best_epoch), "stopped_early": str(result.stopped_early)}
        )
        record.end_record(settings, tracker, data, model, result, command)
        status = "FINISHED"
        return float(result.objective)
    except Interrupted as exc:
        status, error = "KILLED", str(exc)
        where = exc.checkpoint or "(no checkpoint)"
        print(
            f"mlpx: {exc}; checkpoint {where}. Resume with the same overrides plus "
            f"trainer.resume={exc.checkpoint or tracker.run_id}",
            file=sys.stderr,
        )
        raise SystemExit(128 + exc.signum) from None
    except KeyboardInterrupt:
        status, error = "KILLED", "interrupted twice: stopped at once, no checkpoint"
        raise SystemExit(130) from None
    except DivergenceError as exc:
        error = str(exc)
        tracker.set_tags({"diverged": "true"})
        raise UserError(error) from None
    except ValueError as exc:
        error = str(exc)
        raise UserError(error) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.stop_system_metrics(extras)
        tracker.finish(status, error=error)
        if status == "FINISHED":
            record.print_where(settings, tracker, _choices().get("experiment"))


def _gradcheck(settings: Settings, model: Any, data: Any, tracker: Any) -> float:
    """mode=gradcheck: every delta against finite differences; a failure is a UserError."""
    import numpy as np

    from mlpx.analysis.gradcheck import gradcheck
    from mlpx.analysis.log import log_gradcheck

    gc = settings.analysis.gradcheck
    tracker.set_tags({"mode": "gradcheck"})
    report = gradcheck(
        model,
        data.X_train[: gc.samples],
        data.y_train[: gc.samples],
        eps=gc.eps,
        max_params_per_layer=gc.max_params_per_layer,
        rng=np.random.default_rng(settings.trainer.seed),
    )
    print(report.to_markdown(gc.threshold))
    log_gradcheck(tracker, report, gc.threshold)
    if not report.ok(gc.threshold):
        w = report.worst()
        where = "x" if w["layer"] == 0 else f"layer {w['layer']}"
        raise UserError(
            f"gradient check failed: {w['quantity']} of {where} has relative error "
            f"{w['rel_error']:.2e} > analysis.gradcheck.threshold={gc.threshold:g}"
        )
    return float(report.max_error)


def _sanity_checks(settings: Settings, model: Any, data: Any, tracker: Any) -> None:
    """Initial loss near ln C and overfitting 20 samples, on a copy; logged, never fatal."""
    from mlpx.analysis.log import log_sanity_checks
    from mlpx.analysis.sanity import sanity_checks

    sc = settings.analysis.sanity_checks
    results = sanity_checks(
        model,
        data.X_train,
        data.y_train,
        loss_tolerance=sc.loss_tolerance,
        n_samples=sc.overfit_samples,
        max_steps=sc.overfit_steps,
    )
    log_sanity_checks(tracker, results, step=0)
    for r in results:
        print(f"mlpx: sanity check {r}", file=sys.stderr)


def _post_training_analyses(
    settings: Settings, model: Any, data: Any, tracker: Any, result: Any, draw: bool
) -> None:
    """Input gradients (saliency, FGSM, class images) and the analysis figures."""
    an = settings.analysis
    if not (an.saliency or an.adversarial.enabled or an.class_visualisation.enabled or an.figures):
        return
    from mlpx.analysis.log import log_analyses

    cv = an.class_visualisation
    log_analyses(
        tracker,
        model,
        data,
        history=result.history,
        step=result.steps,
        saliency_maps=an.saliency,
        adversarial_epsilons=an.adversarial.epsilons if an.adversarial.enabled else None,
        adversarial_clip=an.adversarial.clip,
        class_images=(
            {"steps": cv.steps, "lr": cv.lr, "norm_bound": cv.norm_bound} if cv.enabled else None
        ),
        figures=an.figures,
        draw=draw,
    )


@contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGINT/SIGTERM: finish the step, checkpoint, stop; a second signal stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.signum is not None:
            raise KeyboardInterrupt
        stop.signum = signum
        print(
            f"mlpx: signal {signum}: finishing the current step and writing a checkpoint "
            "(press Ctrl-C again to stop at once)",
            file=sys.stderr,
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def resolve_resume(value: str, settings: Settings) -> Any:
    """``trainer.resume``: a checkpoint file, a folder of them, or an MLflow run id."""
    from mlpx.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint

    path = Path(value).expanduser()
    if path.is_dir():
        found = latest_checkpoint(path) or latest_checkpoint(path / "checkpoints")
        if found is None:
            raise CheckpointError(f"trainer.resume: no step_*.npz checkpoint in {path}")
        return load_checkpoint(found)
    if path.exists() or not RUN_ID.match(value):
        return load_checkpoint(path)
    # An MLflow run id: its last checkpoint artifact.
    import tempfile

    from mlpx.tracking import check_tracking_uri

    if settings.logger.name == "none":
        raise CheckpointError(
            f"trainer.resume={value} looks like an MLflow run id, but logger=none: give a "
            "checkpoint path or use logger=mlflow"
        )
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = check_tracking_uri(settings.logger.tracking_uri)  # TrackingError: a dead store
    try:
        local = MlflowClient(uri).download_artifacts(
            value, "checkpoints/last.npz", tempfile.mkdtemp(prefix="mlpx-resume-")
        )
    except (MlflowException, OSError) as exc:  # no such run, or no such artifact
        raise CheckpointError(
            f"trainer.resume={value}: no checkpoint of that run in the tracking store "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
    checkpoint = load_checkpoint(local)
    checkpoint.meta.setdefault("run_id", value)
    return checkpoint


def _reachable_run(checkpoint: Any, settings: Settings) -> str | None:
    """The MLflow run a checkpoint came from, if it is in the configured store."""
    run_id = checkpoint.meta.get("run_id")
    if not run_id or settings.logger.name == "none":
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import TrackingError, check_tracking_uri

    try:
        MlflowClient(check_tracking_uri(settings.logger.tracking_uri)).get_run(run_id)
    except (MlflowException, TrackingError, OSError):
        return None  # another store, or deleted: the resumed run gets a new MLflow run
    return run_id


class OutputDirCheck(Callback):
    """Stops with one line when Hydra's output folder cannot be written (before any job)."""

    @staticmethod
    def _check(folder: str, key: str) -> None:
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".mlpx-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            print(
                _error_line(
                    f"cannot write the output folder {path} ({exc.strerror or exc}): set "
                    f"{key}=<a writable folder>"
                ),
                file=sys.stderr,
            )
            raise SystemExit(2) from None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(str(config.hydra.sweep.dir), "hydra.sweep.dir")


def worst_objective(direction: str) -> float:
    """What a failed job reports to a sweeper, so the sweep moves on."""
    return math.inf if direction == "minimize" else -math.inf


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra's entry point: one job of a run or a sweep."""
    from mlpx.app.sweep import sweep_switches

    multirun = _hydra_context()[0]
    try:
        return run(cfg)
    except UserError as exc:
        print(_error_line(str(exc)), file=sys.stderr)
        if multirun and sweep_switches(cfg)[1]:
            print("mlpx: sweep.stop_on_failure=true: stopping the sweep", file=sys.stderr)
        elif multirun:  # the sweep goes on with the other jobs
            direction = OmegaConf.select(cfg, "trainer.direction", default="maximize")
            return worst_objective(str(direction))
        sys.exit(2)


def _quick_help(args: list[str]) -> str | None:
    """``mlpx [overrides] --help`` from Hydra's public compose API: the same text as Hydra's
    own --help with this template, without the two listings of every config group that
    Hydra makes for ``$APP_CONFIG_GROUPS``/``$HYDRA_CONFIG_GROUPS`` (unused here; ~0.5 s).
    None (Hydra answers) for any other flag, a template that uses those names, or an error."""
    rest = [a for a in args if a not in _HELP_FLAGS]
    if len(rest) == len(args) or args[: len(rest)] != rest:  # Hydra: overrides come first
        return None
    if any(a.startswith("-") for a in rest):
        return None
    import string

    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir(), version_base="1.3", job_name="mlpx"):
            cfg = compose("config", overrides=rest, return_hydra_config=True)
            template = str(cfg.hydra.help.template)
            if re.search(r"\$\{?(FLAGS_HELP|APP_CONFIG_GROUPS|HYDRA_CONFIG_GROUPS)", template):
                return None
            clean = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            return string.Template(template).substitute(CONFIG=OmegaConf.to_yaml(clean))
    except Exception:  # Hydra's own --help reports it
        return None


def entry() -> None:
    """Console script ``mlpx``: Hydra's composition errors exit 2 with one line, as mlpx's own
    (:func:`mlpx.app.messages.composition_error`).

    Hydra prints its errors itself unless ``HYDRA_FULL_ERROR=1``, then it raises them: set
    here, so they are caught by type. A user who sets it gets Hydra's full traceback.
    """
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    for arg in sys.argv[1:]:
        message = private_option(arg, Path(config_dir()))
        if message:
            print(_error_line(message), file=sys.stderr)
            sys.exit(2)
    text = _quick_help(sys.argv[1:])
    if text is not None:
        print(text)
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (CompactHydraException, yaml.YAMLError) as exc:  # composing the config
        if full_error:
            raise
        print(_error_line(composition_error(exc)), file=sys.stderr)
        sys.exit(2)
    finally:
        # The process ends here: spare the interpreter's last garbage collection over every
        # imported module (MLflow, scikit-learn, SciPy ...; ~0.5-0.7 s of a run's exit).
        gc.freeze()


if __name__ == "__main__":
    entry()

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
import sys
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlpx.app.config import ConfigError, Settings, settings_from_dict
from mlpx.app.failed_job import record_failed_job
from mlpx.app.helptext import quick_help
from mlpx.app.limits import bounded, check_parallelism, check_sizes
from mlpx.app.messages import (
    composition_error,
    config_source,
    overlay_error,
    private_option,
    with_suggestion,
)
from mlpx.app.plugins import expose_plugins
from mlpx.app.signals import GUARD, Killed, checkpoint_phase
from mlpx.app.summary import CONFIG_HASH_TAG
from mlpx.app.warn import warn
from mlpx.redact import mask_log_records, mask_secrets, mask_std_streams


def config_dir() -> str:
    """``conf/`` beside the package (a checkout or editable install) or inside it (wheel)."""
    here = Path(__file__).resolve().parent.parent  # mlpx/
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"mlpx cannot find its conf/ folder next to {here}")


class UserError(Exception):
    """An error in what the user asked for: printed as one line, no traceback.

    ``recorded``: the job's MLflow run holds it already (or the store cannot take one);
    otherwise a sweep job gets a FAILED child run for it (:mod:`mlpx.app.failed_job`)."""

    def __init__(self, message: str, *, recorded: bool = False) -> None:
        super().__init__(message)
        self.recorded = recorded


def _error_line(message: str) -> str:
    return "mlpx: error: " + " ".join(mask_secrets(str(message)).split())


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


def _log_run_files(tracker: Any, cfg: DictConfig, job_dir: str | None) -> None:
    tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    if job_dir:
        overrides = Path(job_dir) / ".hydra" / "overrides.yaml"
        if overrides.is_file():  # as text: log_text masks credentials (mlpx.redact)
            tracker.log_text(overrides.read_text(), "config/overrides.yaml")


def _finish(tracker: Any, tail: Any, status: str, error: str | None, claim: Any) -> bool:
    """End the run: hand it to the sweep's helper process with its ``tail`` (figures, model;
    the model is logged here while the helper is behind) and the config's ``claim`` (held
    until the helper has ended the run, so that an identical job waiting for it finds the
    run FINISHED) when the job ended normally, else do the tail here (best effort) and end
    it now (:mod:`mlpx.app.offload`). True when handed off."""
    if tail is not None and tail.work:
        from mlpx.app.offload import BEHIND, current_worker, log_figures
        from mlpx.app.record import log_model_now

        worker = current_worker()
        if error is None and worker is not None:
            if tail.model is not None and worker.poll() >= BEHIND:
                log_model_now(tracker, **tail.model)
                tail.model = None
            try:
                tracker.hand_off()
            except Exception:  # the store misbehaves: finish() below says how
                pass
            else:
                tail.status = status
                worker.submit(tail, claim.release if claim is not None else None)
                return True
        try:
            if tail.figures is not None:
                log_figures(tracker, tail.figures)
            if tail.model is not None and error is None:
                log_model_now(tracker, **tail.model)
        except Exception as exc:
            status, error = "FAILED", error or f"{type(exc).__name__}: {exc}"
    tracker.finish(status, error=error)
    return False


def _collect_quietly(sketch: Any, tracker: Any) -> None:
    try:
        sketch.collect(tracker)
    except Exception:  # the run's own error is the one to report
        pass


def _anchored(container: dict[str, Any]) -> dict[str, Any]:
    """With ``hydra.job.chdir=true``: the store stays where ``mlpx`` was launched."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not HydraConfig.get().job.chdir:
        return container
    from mlpx.app.safeguards import anchor_store

    return anchor_store(container, HydraConfig.get().runtime.cwd)


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
    container = _anchored(container)
    overlay = overlay_error(container, _choices(), _search_folders())
    if overlay:  # an overlay without '# @package _global_': its keys would go unused
        raise UserError(overlay)
    try:
        settings = settings_from_dict(container)
    except ConfigError as exc:
        raise UserError(_with_source(str(exc))) from None

    from mlpx.app.sweep import config_hash, read_sweep_info, reuse_finished_run
    from mlpx.app.trial import current_trial

    chash = config_hash(container)
    lg = settings.logger
    link = current_trial(settings.trainer.objective) if multirun else None  # an Optuna trial
    claim = None  # held while this config is looked up and trained: identical sweeps wait
    if multirun and lg.name == "mlflow" and not settings.sweep.force:
        from mlpx.app.safeguards import ConfigClaim
        from mlpx.tracking import resolve_tracking_uri

        try:
            claim = ConfigClaim(resolve_tracking_uri(lg.tracking_uri), chash).acquire()
            reused = reuse_finished_run(lg.tracking_uri, lg.experiment_name, chash, sweep_dir)
        except Exception as exc:  # the lookup only saves time: train when it fails
            warn("look for a finished run", exc)
            reused = None
        if reused is not None:
            claim.release()
            return link.outcome(reused[1], reused[0]) if link else reused[1]

    from mlpx.app import record
    from mlpx.app.build import build, build_tracker, run_tags
    from mlpx.app.offload import figure_history
    from mlpx.app.record import group_tag
    from mlpx.app.resume import config_params, plan_resume, record_resume, resolve_resume
    from mlpx.checkpoint import Checkpointer, CheckpointError
    from mlpx.tracking import TrackingError, flatten
    from mlpx.tracking.store import is_permanent, store_error
    from mlpx.train import DivergenceError, Interrupted, StopRequest, fit

    params = config_params(container)
    GUARD.install()  # SIGINT/SIGTERM end the run KILLED at every phase (mlpx.app.signals)
    GUARD.enter("build")
    try:
        checkpoint = (
            resolve_resume(settings.trainer.resume, settings) if settings.trainer.resume else None
        )
        check_sizes(settings, container)  # before anything large is allocated
        plan = plan_resume(checkpoint, settings, params) if checkpoint else None
        built = build(settings)
        model, optimizer, data, rng = built.model, built.optimizer, built.data, built.rng
        n_train = data.X_train.shape[0]
        state = checkpoint.restore(model, optimizer, rng, n_train) if checkpoint else None
    except (ValueError, CheckpointError) as exc:
        raise UserError(str(exc)) from None
    except TrackingError as exc:
        raise UserError(str(exc)) from None
    sketch = None  # a single run's figures, drawn by a forked child (mlpx.app.figure_process)
    if not multirun and lg.log_figures and lg.name != "none" and settings.mode != "gradcheck":
        from mlpx.app.figure_process import start as start_figures

        sketch = start_figures()
    resume_run = plan.continue_run if plan else None
    parent = read_sweep_info(sweep_dir).get("parent_run_id") if sweep_dir else None
    tracker = None
    try:
        with GUARD.section("deferred", "tracker"):  # no run created without its handle
            checkpoint_phase("tracker")
            tracker = build_tracker(
                settings,
                {k: v for k, v in flatten(container).items() if v is not None},  # set values
                tags={
                    **run_tags(settings, built),
                    CONFIG_HASH_TAG: chash,
                    **group_tag(container),
                    **(link.tags() if link else {}),
                },
                parent_run_id=parent,
                suffix=suffix,
                resume_run_id=resume_run,
            )
            if checkpoint is not None:
                tracker = record_resume(tracker, plan, checkpoint)
    except (TrackingError, Killed) as exc:
        if sketch is not None:
            sketch.close()
        if isinstance(exc, TrackingError):
            raise UserError(str(exc), recorded=True) from None
        if tracker is not None:
            tracker.finish("KILLED", error=str(exc))
        raise
    if link:
        link.note_run(tracker.run_id)
    if parent and sweep_dir and tracker.run_id and os.getpid() != _ENTRY_PID:  # a worker's job
        from mlpx.app.sweep import note_job_process

        note_job_process(sweep_dir, tracker.run_id)  # for the launching process, if it stops

    ckpt_dir = Path(job_dir or ".") / "checkpoints"
    checkpointer = Checkpointer(
        ckpt_dir, settings.trainer.checkpoint_every, settings.trainer.keep_checkpoints, tracker,
        meta={"config": params, "config_hash": chash},
        min_seconds=settings.trainer.checkpoint_min_seconds,
    )  # fmt: skip
    stop = StopRequest()
    status, error, extras = "FAILED", None, {}
    tail = record.run_tail(tracker) if multirun else None  # the sweep's helper ends the run
    command = record.reproduce_command(list(_task_overrides()))
    try:
        GUARD.enter("start")
        _log_run_files(tracker, cfg, job_dir)
        extras = record.start_record(settings, tracker, data, model, command)
        if checkpoint is not None:  # record_resume tagged mlpx.resumed_from
            print(
                f"mlpx: resuming from {checkpoint.path} (epoch {state.epoch}, step {state.step})",
                file=sys.stderr,
            )
        print(
            f"mlpx: {bounded(f'{settings.run_name()} on {data!r}: {model!r}', 400)}",
            file=sys.stderr,
        )
        if settings.mode == "gradcheck":
            value = _gradcheck(settings, model, data, tracker)
            status = "FINISHED"
            return value
        an = settings.analysis
        if an.sanity_checks.enabled and checkpoint is None:
            _sanity_checks(settings, model, data, tracker)
        with GUARD.section("graceful", "training", stop):
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
                on_eval=link.on_eval if link else None,
            )
        draw = settings.logger.log_figures and settings.logger.name != "none"
        GUARD.enter("figures")
        if draw and tail is not None:
            tail.figures = figure_history(result.history)
        elif draw and sketch is not None:
            sketch.submit(result.history)  # drawn while the model is logged, collected below
        elif draw:
            from mlpx.app.offload import log_figures

            log_figures(tracker, result.history)
        GUARD.enter("analyses")
        _post_training_analyses(settings, model, data, tracker, result, draw)
        GUARD.enter("final")
        tracker.log_metrics({"objective": result.objective}, step=result.steps)
        tracker.set_tags(
            {"best_epoch": str(result.best_epoch), "stopped_early": str(result.stopped_early)}
        )
        record.end_record(settings, tracker, data, model, result, command, tail)
        if sketch is not None:
            sketch, drawn = None, sketch
            drawn.collect(tracker)
        status = "KILLED" if link and link.pruned_epoch else "FINISHED"  # pruned: KILLED
        tracker.set_tags(link.pruned_tags() if link else {})
        if link:
            return link.outcome(float(result.objective), tracker.run_id)
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
    except UserError as exc:  # the gradient check
        error = str(exc)
        raise UserError(error, recorded=True) from None
    except Killed as exc:  # a signal outside the training loop, or a second one in it
        status, error = "KILLED", str(exc)
        raise
    except KeyboardInterrupt:  # signal handlers not installed (not the main thread)
        status, error = "KILLED", "interrupted: stopped at once, no checkpoint"
        raise SystemExit(130) from None
    except DivergenceError as exc:
        error = str(exc)
        tracker.set_tags({"diverged": "true"})
        raise UserError(error, recorded=True) from None
    except (ValueError, TrackingError) as exc:
        error = str(exc)
        raise UserError(error, recorded=True) from None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if is_permanent(exc):  # a full disk, no permission: one line, not a traceback
            error = str(store_error(getattr(tracker, "tracking_uri", ""), "record the run", exc))
            raise UserError(error, recorded=True) from None
        raise
    finally:
        record.stop_system_metrics(extras)
        handed = False
        with GUARD.section("deferred", "finish"):  # the run is ended whole
            checkpoint_phase("finish")
            if sketch is not None:  # the run failed after training: its figures, if drawn
                _collect_quietly(sketch, tracker)
            handed = _finish(tracker, tail, status, error, claim)
        if claim is not None and not handed:
            claim.release()
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


class OutputDirCheck(Callback):
    """Stops with one line when Hydra's output folder cannot be written or a sweep override
    gives no value (``range(0)``), before any job."""

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
        from mlpx.app.safeguards import empty_sweeps

        empty = empty_sweeps(list(config.hydra.overrides.task))
        if empty:  # no job: refused before a parent run is made
            message = (
                f"{empty[0]} gives no value, so the sweep would have no job: give at least one"
            )
            print(_error_line(message), file=sys.stderr)
            raise SystemExit(2)
        self._check(str(config.hydra.sweep.dir), "hydra.sweep.dir")
        message = check_parallelism(config.hydra)  # before joblib's traceback (n_jobs=0)
        if message:
            print(_error_line(message), file=sys.stderr)
            raise SystemExit(2)


def worst_objective(direction: str) -> float:
    """What a failed job reports to a sweeper, so the sweep moves on."""
    return math.inf if direction == "minimize" else -math.inf


_ENTRY_PID = -1  # the process of the ``mlpx`` command (entry), once it started


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra's entry point: one job of a run or a sweep."""
    from mlpx.app.sweep import sweep_switches

    multirun = _hydra_context()[0]
    try:
        return run(cfg)
    except Killed as exc:
        print(f"mlpx: {exc}", file=sys.stderr)  # the run (if any) is ended KILLED
        raise SystemExit(exc.exit_code) from None
    except UserError as exc:
        from mlpx.app.safeguards import ConfigClaim

        ConfigClaim.release_all()  # the next job with this config may go on
        print(_error_line(str(exc)), file=sys.stderr)
        if multirun and not exc.recorded:  # a FAILED child, as docs/sweeps.md says
            record_failed_job(cfg, str(exc))
        if multirun and sweep_switches(cfg)[1]:
            print("mlpx: sweep.stop_on_failure=true: stopping the sweep", file=sys.stderr)
        elif multirun:  # the sweep goes on with the other jobs
            direction = OmegaConf.select(cfg, "trainer.direction", default="maximize")
            return worst_objective(str(direction))
        sys.exit(2)
    finally:
        if os.getpid() != _ENTRY_PID:  # a joblib worker, a SLURM job (mlpx.app.workers)
            from mlpx.app import workers

            if workers.launched_elsewhere():
                workers.after_job()


def entry() -> None:
    """Console script ``mlpx``: Hydra's composition errors exit 2 with one line, as mlpx's own
    (:func:`mlpx.app.messages.composition_error`).

    Hydra prints its errors itself unless ``HYDRA_FULL_ERROR=1``, then it raises them: set
    here, so they are caught by type. A user who sets it gets Hydra's full traceback.
    """
    global _ENTRY_PID
    _ENTRY_PID = os.getpid()
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    for arg in sys.argv[1:]:
        message = private_option(arg, Path(config_dir()))
        if message:
            print(_error_line(message), file=sys.stderr)
            sys.exit(2)
    text = quick_help(sys.argv[1:], config_dir())
    if text is not None:
        print(text)
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    expose_plugins()  # mlpx's grid and Optuna sweepers, also from an editable install
    GUARD.install()
    mask_log_records()  # Hydra and MLflow log the tracking URI ...
    mask_std_streams()  # ... and MLflow prints it ("View run ... at: <uri>")
    try:
        main()
    except Killed as exc:  # composing the config, or after the run ended
        print(f"mlpx: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
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

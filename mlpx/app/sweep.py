"""Multirun bookkeeping: one MLflow parent run per sweep, one child run per job.

Hydra calls :class:`MlflowSweepCallback` in the launching process. Before any job starts
it creates the store, the experiment and the parent run (so parallel jobs never race to
create SQLite tables) and writes the parent's id into the sweep folder, where every job,
in this process or another (joblib workers, submitit jobs), reads it. When the sweep ends
it writes the sweep summary on the parent (:func:`mlpx.app.report.write_sweep_summary`: a CSV
and a Markdown table of every child, mean ± std over seeds, a figure per swept key) and
ends the parent FINISHED, tagged ``failed_jobs=N``, even when some children failed. A sweep
stopped early (``sweep.stop_on_failure``, Ctrl-C, a scheduler's SIGTERM) still gets its
summary, from an exit hook, and its parent ends FAILED (KILLED when a job was interrupted),
tagged ``mlpx.sweep_stopped=true``; the runs of jobs whose process died with the sweep
(joblib's workers) are ended KILLED first (:func:`end_orphaned_runs`).

Resumable sweeps: every run is tagged with :func:`config_hash` of its resolved config, and a
job whose config already has a FINISHED run in the experiment is skipped
(:func:`reuse_finished_run`), unless ``sweep.force=true``. Launching the same sweep again
(same command, same config files, same sweeper settings) reopens the same parent run
(tag ``mlpx.sweep_hash``), so an interrupted sweep, launched again, completes under one
parent with one FINISHED child per config.

Nothing here runs at import time beyond Hydra's callback base class; MLflow is imported
inside the functions.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mlpx.app.summary import (
    CONFIG_HASH_TAG,
    OBJECTIVE_METRIC,
    SWEEP_ROLE_TAG,
    SWEPT_KEYS_TAG,
    run_objective,
)
from mlpx.app.warn import warn

__all__ = [
    "CONFIG_HASH_TAG",
    "OBJECTIVE_METRIC",
    "SWEEP_FILE",
    "MlflowSweepCallback",
    "config_hash",
    "find_finished_run",
    "job_suffix",
    "note_reused_run",
    "read_sweep_info",
    "reuse_finished_run",
    "run_objective",
    "sweep_switches",
    "swept_keys",
]

SWEEP_FILE = "mlflow_sweep.json"
#: Folder in the sweep dir where jobs note the FINISHED runs they reused (one file per run).
REUSED_DIR = "mlpx_reused"
#: ``<sweep_dir>/mlpx_jobs/<run_id>``: "<host> <pid>" of the process that runs that job.
JOBS_DIR = "mlpx_jobs"
#: Parent-run tag: what identifies a sweep, so launching it again reopens its parent.
SWEEP_HASH_TAG = "mlpx.sweep_hash"
#: Left out of :func:`config_hash`: where and how a run is recorded, shown or checkpointed,
#: and the sweep switches themselves; none of them changes what is trained.
HASH_EXCLUDE = (
    "hydra",
    "logger",
    "sweep",
    "trainer.progress",
    "trainer.resume",
    "trainer.checkpoint_every",
    "trainer.checkpoint_min_seconds",
    "trainer.keep_checkpoints",
)


# --------------------------------------------------------------------------------------------
# The sweep folder
# --------------------------------------------------------------------------------------------


def read_sweep_info(sweep_dir: str) -> dict[str, Any]:
    """``{"parent_run_id": ..., "swept_keys": [...], ...}`` written for this sweep, or ``{}``."""
    path = Path(sweep_dir) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a sweep varies: ``["optimizer=sgd,adam", "dataset=iris"]`` -> ``["optimizer"]``.

    Optuna's ``interval(...)``/``choice(...)`` and ``range(...)`` count as sweeps too.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]


def sweeper_param_keys(config: DictConfig) -> list[str]:
    """Keys of ``hydra.sweeper.params`` (the search space of an ``hparams_search`` config)."""
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    if not isinstance(params, DictConfig):
        return []
    return [str(k).lstrip("+~") for k in params.keys()]


def all_swept_keys(config: DictConfig, overrides: list[str]) -> list[str]:
    """The sweeper's ``params`` and the command line's sweeps, in order, without repeats.

    A ``params`` key that the command line sets to one value (``model.activation=tanh``
    with an Optuna search) is not swept.
    """
    sweeps = swept_keys(overrides)
    fixed = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o} - set(sweeps)
    keys = [k for k in sweeper_param_keys(config) if k not in fixed] + sweeps
    return list(dict.fromkeys(keys))


def job_suffix(sweep_dir: str, job_overrides: list[str]) -> str:
    """What this job of the sweep varies, e.g. ``optimizer=sgd,trainer.seed=1``."""
    keys = set(read_sweep_info(sweep_dir).get("swept_keys", []))
    return ",".join(o for o in job_overrides if o.split("=", 1)[0].lstrip("+~") in keys)


def note_reused_run(sweep_dir: str | os.PathLike, run_id: str) -> None:
    """Record in the sweep folder that a job reused the FINISHED run ``run_id``.

    One empty file per run (``<sweep_dir>/mlpx_reused/<run_id>``), so parallel jobs never
    write the same file; the sweep summary lists these runs beside the parent's children.
    """
    folder = Path(sweep_dir) / REUSED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run_id).touch()


def reused_runs(sweep_dir: str | os.PathLike) -> list[str]:
    """Run ids noted by :func:`note_reused_run` for this sweep folder."""
    folder = Path(sweep_dir) / REUSED_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def note_job_process(sweep_dir: str | os.PathLike, run_id: str) -> None:
    """Record which process runs the job of run ``run_id`` (``<sweep_dir>/mlpx_jobs/<run_id>``:
    host and pid), so that the launching process can end the run KILLED if that process
    dies without ending it (:func:`end_orphaned_runs`)."""
    import socket

    folder = Path(sweep_dir) / JOBS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / run_id).write_text(f"{socket.gethostname()} {os.getpid()}\n")
    except OSError:  # a nicety: the run is recorded either way
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped (a zombie) is gone too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def end_orphaned_runs(sweep_dir: str | os.PathLike, uri: str, wait: float = 3.0) -> list[str]:
    """End KILLED (tag ``error``) the runs of this sweep folder's jobs that are still RUNNING
    although the process that ran them, on this host, is gone: joblib's workers killed when
    Ctrl-C or a SIGTERM stopped the sweep, a worker killed for memory. A job process still
    alive gets ``wait`` seconds to end its run itself; this process's own jobs and other
    hosts' are left alone. Returns the run ids ended."""
    import socket
    import time

    folder = Path(sweep_dir) / JOBS_DIR
    if not folder.is_dir():
        return []
    host, ended = socket.gethostname(), []
    waiting: dict[str, int] = {}
    for note in sorted(folder.iterdir()):
        try:
            where, pid = note.read_text().split()
            if where == host and int(pid) != os.getpid():
                waiting[note.name] = int(pid)
        except (OSError, ValueError):
            continue
    if not waiting:
        return []
    from mlpx.tracking.store import kill_if_running, open_client, retries_for

    client, retries = open_client(uri), retries_for(uri)
    try:  # only these need their process gone: the others ended their runs themselves
        waiting = {
            run_id: pid
            for run_id, pid in waiting.items()
            if client.get_run(run_id).info.status == "RUNNING"
        }
    except Exception as exc:
        warn("read the stopped jobs' runs", exc)
        return []
    deadline = time.monotonic() + wait
    while any(_alive(pid) for pid in waiting.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    why = "interrupted: the sweep stopped and this job's process ended without ending its run"
    for run_id, pid in waiting.items():
        if _alive(pid):
            continue
        try:
            if kill_if_running(client, run_id, why, retries):
                ended.append(run_id)
        except Exception as exc:
            warn(f"end run {run_id}", exc)
    return ended


# --------------------------------------------------------------------------------------------
# Resumable sweeps
# --------------------------------------------------------------------------------------------


def sweep_switches(cfg: Mapping[str, Any] | DictConfig) -> tuple[bool, bool]:
    """``(sweep.force, sweep.stop_on_failure)`` of a job's config; False when not set."""
    section = cfg.get("sweep") if isinstance(cfg, Mapping | DictConfig) else None
    if not isinstance(section, Mapping | DictConfig):
        return False, False
    return bool(section.get("force", False)), bool(section.get("stop_on_failure", False))


def _canonical(value: Any) -> Any:
    """Plain JSON-able values; integral floats as ints (``lr=1`` and ``lr=1.0`` are one config)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value if math.isfinite(value) else repr(value)
    return str(value)


def hashed_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that :func:`config_hash` hashes (``HASH_EXCLUDE`` removed)."""
    out = _canonical(resolved)
    for dotted in HASH_EXCLUDE:
        node = out
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A stable sha256 (hex) of a resolved config: the same training, the same hash.

    ``resolved`` is the plain config of a job (``OmegaConf.to_container(cfg, resolve=True)``).
    Keys are sorted, integral floats count as ints, and ``hydra``, ``logger.*``, ``sweep.*``,
    ``trainer.progress`` and the checkpoint keys are left out (see ``HASH_EXCLUDE``); the
    seeds are in. The mlpx
    version is not: a run from older code still counts as done (``sweep.force=true`` reruns).
    """
    text = json.dumps(hashed_config(resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_finished_run(uri: str | None, experiment_name: str, config_hash: str) -> str | None:
    """The id of the newest FINISHED run tagged ``mlpx.config_hash=<config_hash>``, or None.

    Looks in experiment ``experiment_name`` only; a missing experiment gives None. FAILED and
    KILLED runs never count, so re-running a sweep re-runs them.
    """
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import resolve_tracking_uri

    client = MlflowClient(tracking_uri=resolve_tracking_uri(uri))
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=(
            f"tags.`{CONFIG_HASH_TAG}` = {_quote(config_hash)} and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def reuse_finished_run(
    uri: str | None,
    experiment_name: str,
    config_hash: str,
    sweep_dir: str | os.PathLike | None = None,
) -> tuple[str, float] | None:
    """``(run_id, objective)`` of a FINISHED run of this config, to return instead of training.

    None when there is none, or when it logged no objective (then the job runs again). When
    one is found it is noted in ``sweep_dir`` (for the sweep summary) and a line is printed.
    """
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import check_tracking_uri

    uri = check_tracking_uri(uri)  # a dead server fails in seconds, not after MLflow's retries
    run_id = find_finished_run(uri, experiment_name, config_hash)
    if run_id is None:
        return None
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    objective = run_objective(run)
    if objective is None:
        return None
    if sweep_dir is not None:
        note_reused_run(sweep_dir, run_id)
    print(
        f"mlpx: skipped: this config already has a FINISHED run {run_id} "
        f"({run.info.run_name}, objective {objective:.4f}); sweep.force=true runs it again",
        file=sys.stderr,
    )
    return run_id, objective


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


def _logger(config: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(config.logger, resolve=True) if "logger" in config else {}


def sweep_hash(config: DictConfig, overrides: list[str], experiment: str) -> str:
    """What identifies a sweep: the base config, the command line's task overrides (less those
    of ``HASH_EXCLUDE``: ``logger.*``, ``sweep.*`` ...) and the sweeper's settings. Launchers
    and output folders do not count (they are ``hydra.*`` overrides), so a sweep moved from
    joblib to SLURM is the same sweep.
    """
    keys = [str(k) for k in config.keys() if k != "hydra"]
    try:
        base = OmegaConf.to_container(OmegaConf.masked_copy(config, keys), resolve=True)
    except OmegaConfBaseException:  # an interpolation that only resolves in the jobs
        base = OmegaConf.to_container(OmegaConf.masked_copy(config, keys), resolve=False)
    try:
        sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    except OmegaConfBaseException:
        sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
    task = sorted(o for o in overrides if not _excluded(o.split("=", 1)[0].lstrip("+~")))
    ident = {
        "base": config_hash(base),
        "task": task,
        "sweeper": _canonical(sweeper),
        "experiment": experiment,
    }
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _excluded(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in HASH_EXCLUDE)


def _find_parent(uri: str, experiment: str, sweep_hash_value: str) -> str | None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{SWEEP_HASH_TAG}` = {_quote(sweep_hash_value)}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def _reopen_parent(uri: str, run_id: str, sweep_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    from mlpx.tracking import retries_for, with_retry

    client = MlflowClient(tracking_uri=uri)
    retries = retries_for(uri)
    with_retry(client.update_run, run_id, status="RUNNING", retries=retries, what="reopen run")
    run = client.get_run(run_id)
    launches = int(run.data.tags.get("mlpx.launches", "1")) + 1
    for key, value in (("mlpx.sweep_dir", str(sweep_dir)), ("mlpx.launches", str(launches))):
        with_retry(client.set_tag, run_id, key, value, retries=retries, what="set tag")


def _wants_worker(config: DictConfig, lg: Any) -> bool:
    """``sweep.artifact_worker``, the jobs run in this process (Hydra's basic launcher) and
    each has figures or a model to log (:mod:`mlpx.app.offload`)."""
    launcher = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    return (
        bool(OmegaConf.select(config, "sweep.artifact_worker", default=True))
        and launcher.endswith(".BasicLauncher")
        and bool(lg.get("log_figures", True) or lg.get("log_model", True))
    )


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run before the jobs, summarises and closes it after them.

    Configured in ``conf/config.yaml`` under ``hydra.callbacks``. Picklable (plain fields
    only): launchers ship it to their worker processes, where only the job hooks run.
    """

    def __init__(self) -> None:
        self.parent: tuple[str, str] | None = None  # (tracking uri, run id)
        self.sweep_dir: str | None = None
        self.keys: list[str] = []
        self.figures = True  # logger.log_figures: the summary's objective figures
        self._exit_hook = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        lg = _logger(config)
        if lg.get("name", "mlflow") != "mlflow":
            return
        if _wants_worker(config, lg):  # first: it starts while the store is prepared
            from mlpx.app.offload import start_worker

            uri = lg.get("tracking_uri")
            start_worker(None if uri is None else str(uri))
        from mlpx.redact import mask_secrets
        from mlpx.tracking import (
            TrackingError,
            check_tracking_uri,
            create_parent_run,
            prepare_store,
        )

        if str(config.hydra.sweeper.get("_target_", "")).endswith(
            "mlpx_optuna_sweeper.optuna_sweeper.OptunaSweeper"
        ):
            from mlpx.app.optuna_sweep import SweepConfigError, check_sweep, fail_line

            try:  # bad sweeper settings: one line before the parent run exists
                check_sweep(config)
            except SweepConfigError as exc:
                fail_line(exc)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            uri = check_tracking_uri(lg.get("tracking_uri"))
            experiment = lg.get("experiment_name", "mlpx")
            prepare_store(uri, experiment)
        except TrackingError as exc:
            print(f"mlpx: error: {mask_secrets(str(exc))}", file=sys.stderr)
            raise SystemExit(2) from None
        overrides = list(config.hydra.overrides.task)
        keys = all_swept_keys(config, overrides)
        force = bool(OmegaConf.select(config, "sweep.force", default=False))
        identity = sweep_hash(config, overrides, experiment)
        run_id = None if force else _find_parent(uri, experiment, identity)
        if run_id is not None:
            _reopen_parent(uri, run_id, sweep_dir)
            print(
                f"mlpx: this sweep was launched before: resuming parent run {run_id} in "
                f"experiment {experiment!r} (configs with a FINISHED run are skipped; "
                "sweep.force=true runs everything again under a new parent)",
                file=sys.stderr,
            )
        else:
            name = "sweep " + (" ".join(overrides) if overrides else sweep_dir.name)
            run_id = create_parent_run(
                uri,
                experiment,
                name[:250],
                tags={
                    "mlpx.sweep_dir": str(sweep_dir),
                    SWEEP_ROLE_TAG: "parent",
                    SWEEP_HASH_TAG: identity,
                    SWEPT_KEYS_TAG: json.dumps(keys),
                },
            )
            print(f"mlpx: sweep parent run {run_id} in experiment {experiment!r}", file=sys.stderr)
        info = {
            "parent_run_id": run_id,
            "swept_keys": keys,
            "tracking_uri": uri,
            "experiment_name": experiment,
        }
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info) + "\n")
        self.parent = (uri, run_id)
        self.sweep_dir = str(sweep_dir)
        self.keys = keys
        self.figures = bool(OmegaConf.select(config, "logger.log_figures", default=True))
        if not self._exit_hook:  # the sweep may end without on_multirun_end: close it then
            atexit.register(self._close_at_exit)
            self._exit_hook = True

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close("FINISHED")

    def _close_at_exit(self) -> None:
        if self.parent is None:
            return
        interrupted = getattr(sys, "last_type", None) is KeyboardInterrupt
        self._close("KILLED" if interrupted else "FAILED", stopped=True)

    def _close(self, status: str, *, stopped: bool = False) -> None:
        """Write the summary (never fatal), then end the parent with ``status`` (KILLED when
        the sweep ``stopped`` early with an interrupted job)."""
        if self.parent is None:
            return
        uri, run_id = self.parent
        self.parent = None
        from mlpx.app.offload import stop_worker

        stop_worker()  # every job's figures and model logged, its run ended: then the summary
        if stopped and self.sweep_dir:  # runs of job processes killed with the sweep
            for orphan in end_orphaned_runs(self.sweep_dir, uri):
                print(f"mlpx: run {orphan} of a stopped job ended KILLED", file=sys.stderr)
        summary = None
        try:
            from mlpx.app.report import write_sweep_summary

            summary = write_sweep_summary(
                uri,
                run_id,
                keys=self.keys,
                extra_run_ids=reused_runs(self.sweep_dir) if self.sweep_dir else (),
                stopped=stopped,
                figures=self.figures,
            )
            print(f"mlpx: sweep summary: {summary.line()}", file=sys.stderr)
        except Exception as exc:  # a summary is a nicety: the sweep's runs are recorded
            print(
                f"mlpx: warning: could not write the sweep summary on run {run_id}: "
                f"{type(exc).__name__}: {exc}; `mlpx-report --parent {run_id}` prints it",
                file=sys.stderr,
            )
        if stopped and summary is not None and any(r.status == "KILLED" for r in summary.rows):
            status = "KILLED"  # a job was interrupted (Ctrl-C, SIGTERM from a scheduler)
        from mlpx.tracking import end_run

        end_run(uri, run_id, status)

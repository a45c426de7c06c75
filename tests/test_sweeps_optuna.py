"""mlpx's optuna sweeper end to end (slow): ``python -m mlpx hparams_search=mlp_optuna`` in a
temporary folder, read back from Optuna (SQLite study) and MLflow (SQLite store).

- a relaunch completes ``n_trials`` in total, and a complete study launches nothing;
- a pruned trial is PRUNED in Optuna and KILLED with ``pruned=true`` in MLflow, counted on
  the parent; the parent carries the study and links the best trial's run;
- a launch killed mid-trial: the relaunch marks that trial FAIL, ends its run KILLED and
  still completes ``n_trials``;
- ``n_jobs`` trials at once through joblib, reported and pruned from the worker processes;
- two mlpx processes on one SQLite study share it: ``n_trials`` in total, two sampler seeds;
- bad settings: one ``mlpx: error:`` line naming the key, no trial and no run.

The MLflow store of a test is a copy of an empty one (the ``sqlite_store`` fixture): its
creation is not what these test, and it cost each test ~2 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import mlpx_env, runs_of
from tests.cli_helpers import run_mlpx as mlpx

optuna = pytest.importorskip("optuna", minversion="4")
pytest.importorskip("hydra_plugins.mlpx_optuna_sweeper")

pytestmark = pytest.mark.slow

FAST = ("dataset=iris", "trainer.epochs=3", "analysis.sanity_checks.enabled=false")
#: Lean trials, where a trial's length does not matter: no test here reads a trial's
#: figures, analyses or model (an optuna search with its summary figures:
#: tests/test_sweeps.py; trials with everything on: the killed launch and the two workers
#: below, whose trials must last a few seconds, and tests/test_postgres.py).
LEAN = ("analysis=off", "logger.log_figures=false", "logger.log_model=false")


def search(tmp_path: Path, *extra: str, lean: bool = True) -> list[str]:
    """The search's arguments: a fixed study name, the stores in ``tmp_path``; ``lean``:
    trials without analyses, figures and model."""
    return [
        "hparams_search=mlp_optuna",
        "hydra.sweeper.study_name=s",
        f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        *FAST,
        *(LEAN if lean else ()),
        *extra,
    ]


def study(tmp_path: Path, name: str = "s"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def states(tmp_path: Path) -> list[str]:
    return [t.state.name for t in study(tmp_path).trials]


def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def children(tmp_path: Path) -> list:
    return [r for r in runs_of(uri(tmp_path)) if "mlflow.parentRunId" in r.data.tags]


def parents(tmp_path: Path) -> list:
    return [r for r in runs_of(uri(tmp_path)) if r.data.tags.get("mlpx.sweep") == "parent"]


@pytest.mark.usefixtures("sqlite_store")
def test_a_relaunch_completes_n_trials_in_total(tmp_path: Path) -> None:
    proc = mlpx(tmp_path, *search(tmp_path, "hydra.sweeper.n_trials=2"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "optuna.db").is_file()  # the default storage: the launch folder
    assert states(tmp_path) == ["COMPLETE"] * 2
    proc = mlpx(tmp_path, *search(tmp_path, "hydra.sweeper.n_trials=4"))
    assert proc.returncode == 0, proc.stderr
    assert "2/4 trials done or running" in proc.stderr
    assert states(tmp_path) == ["COMPLETE"] * 4  # 2 more, not 4 more
    trials = study(tmp_path).trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    kids = children(tmp_path)
    assert sorted(r.data.tags["optuna.trial_number"] for r in kids) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in kids)
    for t in trials:  # each trial knows its run
        assert t.user_attrs["mlflow_run_id"] in {r.info.run_id for r in kids}
    proc = mlpx(tmp_path, *search(tmp_path, "hydra.sweeper.n_trials=4"))
    assert proc.returncode == 0, proc.stderr
    assert len(study(tmp_path).trials) == 4 and len(children(tmp_path)) == 4
    parent = max(parents(tmp_path), key=lambda r: r.info.start_time)
    tags = parent.data.tags
    assert tags["optuna.study_name"] == "s" and tags["optuna.sampler"] == "TPESampler"
    assert tags["optuna.storage"].endswith("optuna.db") and tags["optuna.pruner"] == "none"
    best = study(tmp_path).best_trial
    assert tags["optuna.best_trial"] == str(best.number)
    assert tags["optuna.best_run_id"] == best.user_attrs["mlflow_run_id"]


@pytest.mark.usefixtures("sqlite_store")
def test_a_pruned_trial_is_visible_in_optuna_and_mlflow(tmp_path: Path) -> None:
    # ThresholdPruner(lower=2): every reported accuracy is below 2, so each trial is pruned
    # at its first evaluation
    proc = mlpx(
        tmp_path,
        *search(tmp_path, "hydra.sweeper.n_trials=2"),
        "+hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=2.0",
    )
    assert proc.returncode == 0, proc.stderr
    assert "pruned at epoch 1" in proc.stderr
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED"] * 2
    assert all(t.intermediate_values.keys() == {1} for t in trials)
    assert all(t.user_attrs["pruned_epoch"] == 1 for t in trials)
    kids = children(tmp_path)
    assert len(kids) == 2
    for r in kids:
        assert r.info.status == "KILLED"
        assert r.data.tags["pruned"] == "true" and r.data.tags["pruned_epoch"] == "1"
    (parent,) = parents(tmp_path)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["pruned_jobs"] == "2" and tags["failed_jobs"] == "0"
    assert tags["optuna.n_pruned"] == "2" and tags["optuna.pruner"] == "ThresholdPruner"
    assert "2 pruned" in proc.stderr


@pytest.mark.usefixtures("sqlite_store")
def test_n_jobs_trials_at_once_through_joblib_report_from_the_workers(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = mlpx(
        tmp_path,
        *search(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2"),
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "+hydra/sweeper/pruner=threshold",
        "hydra.sweeper.pruner.lower=2.0",
    )
    assert proc.returncode == 0, proc.stderr
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED"] * 4  # reported from loky workers
    kids = children(tmp_path)
    assert len(kids) == 4 and all(r.data.tags.get("pruned") == "true" for r in kids)
    (sweep_dir,) = (tmp_path / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep_dir.glob("trial_*")) == [f"trial_{i}" for i in range(4)]


@pytest.mark.usefixtures("sqlite_store")
def test_a_killed_launch_is_marked_and_completed_by_the_next(tmp_path: Path) -> None:
    args = search(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.heartbeat_grace=2",
        lean=False,
    )
    # 400 epochs with early stopping off: the first trial is still training when killed (with
    # early stopping it could finish within the 1.5 s below and the kill hit the second).
    args = [a for a in args if not a.startswith("trainer.epochs")] + [
        "trainer.early_stopping.patience=0",
        "trainer.epochs=400",
    ]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpx", *args],
        cwd=tmp_path,
        env=mlpx_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the first trial trains
        time.sleep(0.5)
        text = (tmp_path / "killed.log").read_text()
        if "MLP(sizes=" in text and (tmp_path / "optuna.db").is_file():
            break
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert states(tmp_path) == ["RUNNING"]
    time.sleep(3)  # the heartbeat is now older than the grace period
    # The next launch, lean: its two trials of 400 epochs took ~8.5 s each with the health
    # metrics, figures and model of the killed launch's trials (what it checks is the study
    # and the killed run, not the trials' records).
    proc = mlpx(tmp_path, *args, *LEAN)
    assert proc.returncode == 0, proc.stderr
    assert states(tmp_path) == ["FAIL", "COMPLETE", "COMPLETE"]
    killed = [r for r in children(tmp_path) if r.data.tags.get("optuna.trial_number") == "0"]
    assert len(killed) == 1 and killed[0].info.status == "KILLED"
    assert "interrupted" in killed[0].data.tags["error"]


@pytest.mark.usefixtures("sqlite_store")
def test_two_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    # not lean: trials of a few seconds, so that each worker surely gets some of the six
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlpx",
                *search(tmp_path, "hydra.sweeper.n_trials=6", lean=False),
                f"hydra.sweep.dir=multirun/worker{i}",
            ],
            cwd=tmp_path,
            env=mlpx_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "database is locked" not in err
    s = study(tmp_path)
    # Both workers may ask for the sixth trial at once: the one asked beyond n_trials is told
    # FAIL at once and marked mlpx.surplus (docs/sweeps.md); no other trial may fail.
    assert [t.state.name for t in s.trials].count("COMPLETE") == 6
    others = [t for t in s.trials if t.state.name != "COMPLETE"]
    assert all(t.state.name == "FAIL" and t.user_attrs.get("mlpx.surplus") for t in others)
    assert len(others) <= 1 and all(not t.params for t in others)
    seeds = {v for k, v in s.user_attrs.items() if k.startswith("mlpx.worker_seed.")}
    assert len(seeds) == 2  # seed + each worker's first trial number
    done = [t for t in s.trials if t.state.name == "COMPLETE"]
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6
    kids = children(tmp_path)
    assert len(kids) == 6 and all(r.info.status == "FINISHED" for r in kids)
    for i in range(2):  # each worker ran some trials, in its own job folders
        assert list((tmp_path / "multirun" / f"worker{i}").glob("trial_*"))


def test_bad_settings_stop_before_any_trial(tmp_path: Path) -> None:
    optuna.create_study(
        study_name="max", storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize"
    )
    cases = {
        "hydra.sweeper.storage=postgresql+psycopg://***@127.0.0.1:9/db": [
            "hydra.sweeper.storage=postgresql+psycopg://u:s3cret@127.0.0.1:9/db"
        ],
        "hydra.sweeper.pruner._target_=optuna.pruners.Nope": [
            "+hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner._target_=optuna.pruners.Nope",
        ],
        "hydra.sweeper.sampler._target_=optuna.samplers.Nope": [
            "hydra.sweeper.sampler._target_=optuna.samplers.Nope"
        ],
        "hydra.sweeper.direction=minimize": [
            "hydra.sweeper.study_name=max",
            "trainer.direction=minimize",
        ],
        "model.nope is not a key": ["model.nope=choice(1,2)"],
    }
    for key, extra in cases.items():
        proc = mlpx(tmp_path, *search(tmp_path, "hydra.sweeper.n_trials=1"), *extra, timeout=120)
        assert proc.returncode == 2, (key, proc.stderr)
        errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
        assert len(errors) == 1 and key in errors[0], (key, proc.stderr)
        assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr
    assert runs_of(uri(tmp_path)) == []  # no parent run, no trial run
    names = [
        s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/optuna.db")
    ]
    assert names == ["max"] and study(tmp_path, "max").trials == []

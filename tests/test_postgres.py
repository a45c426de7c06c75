"""PostgreSQL for real (slow): a throwaway PostgreSQL 15 server (tests/postgres.py) as

1. the backend store of an ``mlflow server`` that ``mlpx`` runs and a grid sweep log to
   through ``logger.tracking_uri=http://127.0.0.1:<port>``; read back over HTTP (runs,
   parent and children, metric histories) and straight from PostgreSQL's tables;
2. the Optuna storage of one study that two ``mlpx`` sweep processes work on at once.

These tests fail, not skip, when PostgreSQL or psycopg is missing (``.ci/run`` installs
both); ``MLPX_SKIP_POSTGRES=1`` skips them on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import client, mlflow_server, mlpx_env, run_mlpx
from tests.postgres import PostgresCluster

FAST = ("dataset=iris", "trainer.epochs=3")


@pytest.mark.slow
def test_mlflow_server_on_postgres_records_runs_and_a_sweep(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    store = postgres.create_database("mlflow_store")
    assert store.startswith("postgresql+psycopg://")
    server_dir, work = tmp_path / "server", tmp_path / "work"
    server_dir.mkdir()
    work.mkdir()
    with mlflow_server(store, server_dir) as base:
        at = (f"logger.tracking_uri={base}", "logger.experiment_name=pg")
        single = run_mlpx(work, *at, *FAST, "optimizer=adam", "trainer.seed=7")
        assert single.returncode == 0, single.stderr
        sweep = run_mlpx(work, "-m", *at, *FAST, "optimizer=sgd,adam", "trainer.seed=0,1")
        assert sweep.returncode == 0, sweep.stderr
        assert "4 runs: 4 finished, 0 failed" in sweep.stderr
        assert not list(work.rglob("mlflow.db")) and not (work / "mlruns").exists()

        # Read back through the server.
        c = client(base)
        exp = c.get_experiment_by_name("pg")
        runs = c.search_runs([exp.experiment_id], max_results=100)
        assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
        parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        alone = [r for r in runs if r not in parents and r not in children]
        assert len(parents) == 1 and len(children) == 4 and len(alone) == 1
        pid = parents[0].info.run_id
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {pid}
        assert parents[0].data.tags["finished_jobs"] == "4"
        assert sorted(
            (r.data.params["optimizer.name"], r.data.params["trainer.seed"]) for r in children
        ) == [("adam", "0"), ("adam", "1"), ("sgd", "0"), ("sgd", "1")]
        for run in [*children, *alone]:
            history = c.get_metric_history(run.info.run_id, "train/loss")
            steps = [m.step for m in sorted(history, key=lambda m: m.step)]
            assert len(steps) == 3 and steps[0] < steps[1] < steps[2]  # one value an epoch
            assert all(m.value > 0 for m in history)
            assert 0.0 <= run.data.metrics["val/accuracy"] <= 1.0
        best = parents[0].data.tags["best_run_id"]
        assert best in {r.info.run_id for r in children}
        assert "summary/sweep_summary.md" in {a.path for a in c.list_artifacts(pid, "summary")}

    # The same, straight from PostgreSQL's tables: the server really stored them there.
    rows = postgres.query(
        "mlflow_store",
        "SELECT r.status, count(*) FROM runs r JOIN experiments e"
        " ON r.experiment_id = e.experiment_id WHERE e.name = %s GROUP BY r.status",
        "pg",
    )
    assert rows == [("FINISHED", 6)]
    (n_loss,) = postgres.query(
        "mlflow_store", "SELECT count(*) FROM metrics WHERE key = %s", "train/loss"
    )
    assert n_loss == (15,)  # 5 runs x 3 epochs
    assert list((server_dir / "mlartifacts").rglob("sweep_summary.md"))


@pytest.mark.slow
def test_two_sweep_workers_share_one_optuna_study_in_postgres(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    """Two ``mlpx hparams_search=mlp_optuna`` processes started together with one PostgreSQL
    storage and study name: one study, 6 trials in total between them (not 6 each), no
    config proposed twice (each worker's sampler seeded differently), every trial an MLflow
    run (MLflow's store in PostgreSQL too) tagged with its trial number."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.mlpx_optuna_sweeper")
    storage = postgres.create_database("optuna_studies")
    tracking = postgres.create_database("mlflow_workers")
    # The MLflow schema is made before the workers start, as a running tracking server
    # would have it: two processes creating a fresh MLflow schema at once race.
    client(tracking).search_experiments()
    work = tmp_path / "work"
    work.mkdir()
    common = (
        "hparams_search=mlp_optuna",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=6",
        f"logger.tracking_uri={tracking}",
        *FAST,
    )
    command = [sys.executable, "-m", "mlpx", *common]
    workers = [
        subprocess.Popen(
            [*command, f"hydra.sweep.dir=multirun/worker{w}"],
            cwd=work,
            env=mlpx_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in range(2)
    ]
    outputs = [p.communicate(timeout=540)[0] for p in workers]
    for p, out in zip(workers, outputs):
        assert p.returncode == 0, out[-4000:]

    # Optuna: one study; 6 COMPLETE trials in all; any other trial is a surplus one (asked
    # by both workers at once beyond n_trials) told FAIL at once.
    assert postgres.query("optuna_studies", "SELECT study_name FROM studies") == [("shared",)]
    study = optuna.load_study(study_name="shared", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    others = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert all(
        t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("mlpx.surplus") for t in others
    ), others
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6  # no config twice
    seeds = {k: v for k, v in study.user_attrs.items() if k.startswith("mlpx.worker_seed.")}
    assert len(seeds) == 2 and len(set(seeds.values())) == 2, seeds
    # Both workers ran trials, each trial in one worker only: with a storage, Hydra's job
    # folders are named trial_<number>.
    ran = [
        sorted(
            int(d.name.split("_")[1]) for d in (work / "multirun" / f"worker{w}").glob("trial_*")
        )
        for w in range(2)
    ]
    assert min(len(r) for r in ran) >= 1, ran
    assert sorted(ran[0] + ran[1]) == sorted(t.number for t in done), ran

    # MLflow: one FINISHED run per COMPLETE trial, tagged with its number and the study.
    runs = runs_of_store(tracking)
    children = [r for r in runs if "optuna.trial_number" in r.data.tags]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in finished) == sorted(
        t.number for t in done
    )
    assert {r.data.tags["optuna.study_name"] for r in children} == {"shared"}
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in finished}
    for t in done:
        assert by_number[t.number].data.metrics["objective"] == pytest.approx(t.value)
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    assert parents and all(p.data.tags["optuna.study_name"] == "shared" for p in parents)
    assert all("postgresql" in p.data.tags["optuna.storage"] for p in parents)


def runs_of_store(uri: str) -> list:
    """Every run of the experiment ``mlpx`` in the store at ``uri``."""
    c = client(uri)
    exp = c.get_experiment_by_name("mlpx")
    assert exp is not None, f"no experiment 'mlpx' in {uri}"
    return c.search_runs([exp.experiment_id], max_results=1000)

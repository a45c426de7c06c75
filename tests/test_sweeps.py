"""Sweeps: config hashes, the summary table, and (slow) real sweeps read back from MLflow.

The slow tests run ``python -m mlpx`` in a temporary folder with a temporary SQLite store:
joblib (2 workers x 4 jobs on a fresh store), an Optuna search of 4 trials, submitit_local,
the summary artifacts and ``mlpx-report``, a sweep with a failing job, resuming, and a real
``mlflow server`` on 127.0.0.1 (the session's, shared with tests/test_reliability_secrets.py).
Most start on a copy of an empty store (the ``sqlite_store`` fixture). Tests of a launcher
or sweeper plugin skip without it (``pip install -e ".[sweep]"``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlpx.app import report, summary
from mlpx.app.config import TOP_KEYS
from mlpx.app.sweep import all_swept_keys, config_hash, hashed_config, sweep_switches, swept_keys
from mlpx.tracking.model import logged_model_ids
from tests.cli_helpers import client, mlpx_env, run_module
from tests.cli_helpers import run_mlpx as mlpx


def mlpx_report(cwd: Path, *args: str, env: dict[str, str] | None = None):
    return run_module("mlpx.app.report", cwd, *args, timeout=120, env=env)


ROOT = Path(__file__).resolve().parents[1]
FAST = ("dataset=iris", "trainer.epochs=2")
#: No analyses and no model: what the sweep tests read is the runs, their statuses, params and
#: tags, and the parent's summary (figures included; a run with everything on:
#: tests/test_cli.py and tests/test_tracking_cli.py).
QUICK = (*FAST, "analysis=off", "logger.log_model=false")
#: ... and no figures either, where the test reads no summary figure.
LEAN = (*QUICK, "logger.log_figures=false")
#: The lead's wiring in cli.py/config.py (the ``sweep`` group, config-hash tags, skipping
#: FINISHED configs, stop_on_failure) comes with the ``sweep`` top-level key.
WIRED = "sweep" in TOP_KEYS
#: ``hparams_search: null`` in conf/config.yaml's defaults lets ``hparams_search=NAME`` in.
SEARCH = "hparams_search=mlp_optuna"
if "hparams_search" not in (ROOT / "conf" / "config.yaml").read_text():
    SEARCH = "+" + SEARCH
needs_wiring = pytest.mark.skipif(
    not WIRED, reason="needs the sweep group wired into mlpx.app.cli/mlpx.app.config"
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def needs_optuna_sweeper() -> None:
    """Skip without mlpx's optuna sweeper and Optuna >= 4 (``pip install -e ".[sweep]"``)."""
    pytest.importorskip("optuna", minversion="4")
    pytest.importorskip("hydra_plugins.mlpx_optuna_sweeper")


def all_runs(uri: str, experiment: str = "mlpx") -> list:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id], max_results=1000)


def split(runs: list) -> tuple[list, list]:
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def artifact_text(uri: str, run_id: str, path: str, dst: Path) -> str:
    local = client(uri).download_artifacts(run_id, path, str(dst))
    return Path(local).read_text()


def artifact_paths(uri: str, run_id: str, folder: str = "summary") -> set[str]:
    return {a.path for a in client(uri).list_artifacts(run_id, folder)}


def store(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, f"logger.tracking_uri={uri}"


# --------------------------------------------------------------------------------------------
# Fast: config hashes
# --------------------------------------------------------------------------------------------

CFG: dict[str, Any] = {
    "model": {"widths": [128, 64], "depth": None, "activation": "relu"},
    "optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]},
    "trainer": {"epochs": 30, "seed": 0, "progress": "auto"},
    "logger": {"name": "mlflow", "tracking_uri": None, "experiment_name": "mlpx"},
    "sweep": {"force": False, "stop_on_failure": False},
    "mode": "train",
}


def _with(cfg: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(cfg)
    node = out
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


def test_config_hash_is_stable_and_ignores_key_order() -> None:
    h = config_hash(CFG)
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(CFG) == h
    reordered = {k: CFG[k] for k in reversed(list(CFG))}
    reordered["optimizer"] = dict(reversed(list(CFG["optimizer"].items())))
    assert config_hash(reordered) == h


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("logger.tracking_uri", "http://127.0.0.1:5000"),
        ("logger.experiment_name", "other"),
        ("logger.run_name", "mine"),
        ("sweep.force", True),
        ("sweep.stop_on_failure", True),
        ("trainer.progress", "false"),
        ("hydra", {"run": {"dir": "x"}}),
        ("optimizer.lr", 1e-3),  # the same number written another way
    ],
)
def test_config_hash_ignores_where_and_how_a_run_is_recorded(key: str, value: Any) -> None:
    assert config_hash(_with(CFG, key, value)) == config_hash(CFG)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("trainer.seed", 1),
        ("optimizer.lr", 0.01),
        ("model.widths", [64, 128]),
        ("model.activation", "tanh"),
        ("optimizer.betas", [0.9, 0.99]),
        ("dataset", {"name": "iris"}),
    ],
)
def test_config_hash_changes_with_what_is_trained(key: str, value: Any) -> None:
    assert config_hash(_with(CFG, key, value)) != config_hash(CFG)


def test_config_hash_treats_integral_floats_as_ints() -> None:
    one, one_point_zero = _with(CFG, "optimizer.lr", 1), _with(CFG, "optimizer.lr", 1.0)
    assert config_hash(one) == config_hash(one_point_zero)
    assert "logger" not in hashed_config(CFG) and "progress" not in hashed_config(CFG)["trainer"]


def test_config_hash_of_composed_configs() -> None:
    """Two compositions agree; the store does not count, the seed does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):

        def h(*overrides: str) -> str:
            from omegaconf import OmegaConf

            cfg = compose(config_name="config", overrides=list(overrides))
            return config_hash(OmegaConf.to_container(cfg, resolve=True))

        base = h()
        assert h() == base
        assert h("logger.tracking_uri=sqlite:///elsewhere.db") == base
        assert h("logger=none") == base
        assert h("trainer.seed=1") != base
        assert h("optimizer=sgd") != base


def test_swept_keys_of_grid_and_optuna_sweeps() -> None:
    from omegaconf import OmegaConf

    assert swept_keys(["optimizer=sgd,adam", "x=interval(0, 1)", "+y=choice(1, 2)", "z=3"]) == [
        "optimizer",
        "x",
        "y",
    ]
    params = {"optimizer.lr": "interval(0.1, 1)", "model.activation": "choice(relu, tanh)"}
    cfg = OmegaConf.create({"hydra": {"sweeper": {"params": params}}})
    overrides = ["trainer.seed=0,1", "model.activation=tanh", "dataset=iris"]
    assert all_swept_keys(cfg, overrides) == ["optimizer.lr", "trainer.seed"]
    assert all_swept_keys(OmegaConf.create({"hydra": {"sweeper": {}}}), []) == []


def test_the_optuna_search_config_composes_and_validates() -> None:
    needs_optuna_sweeper()
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mlpx.app.config import settings_from_dict

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        for extra in ([], ["model.depth=3", "model.width=32", "trainer.direction=minimize"]):
            cfg = compose(
                config_name="config", overrides=[SEARCH, *extra], return_hydra_config=True
            )
            hydra_cfg = cfg.hydra
            assert str(hydra_cfg.mode) == "RunMode.MULTIRUN"  # no -m needed
            sweeper = hydra_cfg.sweeper
            assert sweeper._target_.endswith("mlpx_optuna_sweeper.optuna_sweeper.OptunaSweeper")
            assert sweeper.storage == "sqlite:///optuna.db" and sweeper.pruner is None
            assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
            assert isinstance(sweeper.sampler.seed, int)
            assert sweeper.direction == cfg.trainer.direction
            assert set(sweeper.params) == {
                "optimizer.lr",
                "model.depth",
                "model.width",
                "model.activation",
            }
            keys = [k for k in cfg if k != "hydra"]
            job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
            settings = settings_from_dict(job)  # no widths/depth clash
            assert settings.model.widths == ([32, 32, 32] if extra else [64, 64])


def test_sweep_switches() -> None:
    assert sweep_switches({}) == (False, False)
    assert sweep_switches({"sweep": {"force": True}}) == (True, False)
    assert sweep_switches({"sweep": {"stop_on_failure": True}}) == (False, True)


# --------------------------------------------------------------------------------------------
# Fast: the table
# --------------------------------------------------------------------------------------------


def fake_run(
    run_id: str,
    params: dict[str, str],
    *,
    status: str = "FINISHED",
    objective: float | None = None,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    start: int = 0,
    metrics: dict[str, float] | None = None,
) -> SimpleNamespace:
    base = {"trainer.objective": "val/accuracy", "trainer.direction": "maximize"}
    m = dict(metrics or {})
    if objective is not None:
        m["objective"] = objective
    return SimpleNamespace(
        info=SimpleNamespace(
            run_id=run_id, run_name=name or run_id, status=status, start_time=start
        ),
        data=SimpleNamespace(params={**base, **params}, metrics=m, tags=dict(tags or {})),
    )


def seed_sweep() -> list[SimpleNamespace]:
    runs = []
    values = {"sgd": [0.80, 0.90, 0.85], "adam": [0.95, 0.97, None]}
    for i, (opt, objs) in enumerate(values.items()):
        for seed, obj in enumerate(objs):
            status = "FINISHED" if obj is not None else "FAILED"
            tags = {"error": "training diverged at epoch 2 | lower lr"} if obj is None else {}
            runs.append(
                fake_run(
                    f"{opt}{seed}",
                    {"optimizer.name": opt, "trainer.seed": str(seed)},
                    status=status,
                    objective=obj,
                    name=f"{opt}-lr0.1 [optimizer={opt},trainer.seed={seed}]",
                    tags=tags,
                    start=10 * i + seed,
                    metrics={"val/accuracy": 0.3} if obj is None else None,
                )
            )
    return runs


def test_summary_rows_groups_and_best() -> None:
    s = summary.summarize(seed_sweep(), ["optimizer", "trainer.seed"])
    assert [r.run_id for r in s.rows] == ["sgd0", "sgd1", "sgd2", "adam0", "adam1", "adam2"]
    assert s.rows[0].values == {"optimizer": "sgd", "trainer.seed": "0"}  # optimizer.name
    assert s.failed == 1 and s.finished == 5
    failed = s.rows[-1]
    assert failed.objective is None and "diverged" in failed.error  # no objective when failed
    assert s.best.run_id == "adam1"
    assert s.group_keys == ["optimizer"]
    by_opt = {g.values["optimizer"]: g for g in s.groups}
    assert by_opt["sgd"].n == 3 and by_opt["sgd"].failed == 0
    assert math.isclose(by_opt["sgd"].mean, 0.85)
    assert math.isclose(by_opt["sgd"].std, 0.05)  # sample std of 0.80, 0.90, 0.85
    assert by_opt["adam"].n == 2 and by_opt["adam"].failed == 1
    assert by_opt["adam"].seeds == ("0", "1", "2")
    assert by_opt["sgd"].mean_std == "0.8500 ± 0.0500"


def test_summary_markdown_and_csv() -> None:
    s = summary.summarize(seed_sweep(), ["optimizer", "trainer.seed"], title="T")
    md = s.markdown()
    lines = md.splitlines()
    assert lines[0] == "## T"
    assert "6 runs: 5 finished, 1 failed" in md and "best 0.9700" in md
    assert "| run | status | optimizer | trainer.seed | val/accuracy | error |" in lines
    assert "| sgd-lr0.1 | FINISHED | sgd | 0 | 0.8000 |  |" in lines
    failed = next(line for line in lines if line.startswith("| adam-lr0.1 | FAILED"))
    assert "| – |" in failed and "epoch 2 \\| lower lr" in failed  # '|' escaped
    assert "### Mean ± std over `trainer.seed`, grouped by optimizer" in md
    assert "| sgd | 0,1,2 | 3 | 0 | 0.8500 ± 0.0500 |" in lines
    rows = list(csv.DictReader(io.StringIO(s.runs_csv())))
    assert [r["run_id"] for r in rows] == [r.run_id for r in s.rows]
    assert rows[0]["optimizer"] == "sgd" and float(rows[0]["objective"]) == 0.8
    assert rows[-1]["status"] == "FAILED" and rows[-1]["objective"] == ""
    groups = list(csv.DictReader(io.StringIO(s.groups_csv())))
    assert {g["optimizer"] for g in groups} == {"sgd", "adam"}


def test_summary_without_seed_has_no_groups_and_minimize_picks_the_least() -> None:
    runs = [
        fake_run("a", {"optimizer.lr": "0.1", "trainer.direction": "minimize"}, objective=0.4),
        fake_run("b", {"optimizer.lr": "0.01", "trainer.direction": "minimize"}, objective=0.2),
    ]
    s = summary.summarize(runs)  # keys: the params that differ
    assert s.keys == ["optimizer.lr"] and not s.groups and "Mean ± std" not in s.markdown()
    assert s.direction == "minimize" and s.best.run_id == "b"


def test_summary_keeps_one_run_per_config_hash() -> None:
    tags = {"mlpx.config_hash": "h1"}
    runs = [
        fake_run("old", {"x": "1"}, status="FAILED", tags=tags, start=1),
        fake_run("new", {"x": "1"}, objective=0.9, tags=tags, start=2),
        fake_run("retry", {"x": "1"}, status="FAILED", tags=tags, start=3),
        fake_run("other", {"x": "2"}, objective=0.8, start=4),
    ]
    s = summary.summarize(runs, ["x"], reused=["new"])
    assert [r.run_id for r in s.rows] == ["new", "other"]
    assert s.superseded == 2 and s.rows[0].reused and "(reused)" in s.runs_markdown()


def test_swept_values_from_the_run_name_suffix() -> None:
    keys = ["model", "model.widths", "trainer.seed"]
    name = "adam-lr0.001-w64x64-relu [model=deep,model.widths=[64,64],trainer.seed=1]"
    assert summary.suffix_values(name, keys) == {
        "model": "deep",
        "model.widths": "[64,64]",
        "trainer.seed": "1",
    }
    run = fake_run("r", {"trainer.seed": "1"}, name=name)
    assert summary.swept_value(run, "model", keys) == "deep"  # no model.name param


def test_objective_is_read_from_the_metric_or_the_objective_key() -> None:
    assert summary.run_objective(fake_run("a", {}, objective=0.5)) == 0.5
    assert summary.run_objective(fake_run("b", {}, metrics={"val/accuracy": 0.7})) == 0.7
    assert summary.run_objective(fake_run("c", {})) is None


def test_objective_figures() -> None:
    s = summary.summarize(seed_sweep(), ["optimizer", "trainer.seed"])
    fig = summary.objective_figure(s, "optimizer")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sgd", "adam"]
    assert "1 failed" in ax.get_title()
    runs = [
        fake_run(str(i), {"optimizer.lr": str(lr)}, objective=0.5 + i / 10)
        for i, lr in enumerate([1e-4, 1e-3, 1e-2])
    ]
    fig = summary.objective_figure(summary.summarize(runs), "optimizer.lr")
    assert fig.axes[0].get_xscale() == "log"
    fig.savefig(io.BytesIO(), format="png")  # renders headless (Agg)
    assert summary.figure_name("model.widths") == "summary/objective_vs_model.widths.png"
    assert summary.figure_name("a/b c") == "summary/objective_vs_a_b_c.png"


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert report.main(["--tracking-uri", missing, "--experiment", "mlpx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlpx-report: error: no MLflow store at") and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(SystemExit):
        report.main(["--experiment", "a", "--parent", "b"])  # one or the other


# --------------------------------------------------------------------------------------------
# Slow: real sweeps
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_joblib_two_workers_four_jobs_on_a_fresh_store(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    uri, at = store(tmp_path)
    proc = mlpx(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        at,
        *FAST,
        "optimizer=sgd,adam",
        "trainer.seed=0,1",
    )
    assert proc.returncode == 0, proc.stderr
    for bad in ("database is locked", "already exists", "Traceback"):
        assert bad not in proc.stderr, proc.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 1 and len(children) == 4
    pid = parents[0].info.run_id
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {pid}
    assert all(r.info.status == "FINISHED" for r in children)
    assert len({r.info.run_name for r in children}) == 4  # the swept values name them
    parent = client(uri).get_run(pid)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["failed_jobs"] == "0" and parent.data.tags["jobs"] == "4"


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_optuna_search_of_four_trials(tmp_path: Path) -> None:
    needs_optuna_sweeper()
    uri, at = store(tmp_path)
    # no -m: the hparams_search config sets hydra.mode=MULTIRUN
    proc = mlpx(tmp_path, SEARCH, "hydra.sweeper.n_trials=4", at, *QUICK)
    assert proc.returncode == 0, proc.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 1 and len(children) == 4
    assert all(r.info.status == "FINISHED" for r in children)
    for r in children:
        p = r.data.params
        # model.widths is null in the search: params hold set values only (issue 15)
        assert "model.widths" not in p and p["model.depth"] in {"1", "2", "3"}
        assert p["model.width"] in {"32", "64", "128", "256"}
        assert p["model.activation"] in {"relu", "tanh", "gelu", "elu"}
        assert 1e-4 <= float(p["optimizer.lr"]) <= 0.1
    (results,) = tmp_path.glob("multirun/*/*/optimization_results.yaml")
    assert "best_value" in results.read_text()
    pid = parents[0].info.run_id
    assert {
        "summary/objective_vs_optimizer.lr.png",
        "summary/objective_vs_model.depth.png",
        "summary/objective_vs_model.width.png",
        "summary/objective_vs_model.activation.png",
    } <= artifact_paths(uri, pid)


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_submitit_local_two_jobs(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    uri, at = store(tmp_path)
    proc = mlpx(
        tmp_path,
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        at,
        *LEAN,
        "optimizer=sgd,adam",
    )
    assert proc.returncode == 0, proc.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status == "FINISHED" for r in children)
    assert list(tmp_path.glob("multirun/*/*/.submitit/*/*_log.err"))


@pytest.mark.slow
def test_slurm_launcher_config_composes(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = mlpx(tmp_path, "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert proc.returncode == 0, proc.stderr
    assert "SlurmLauncher" in proc.stdout and "partition: gpu" in proc.stdout
    assert "timeout_min: 60" in proc.stdout and "gpus_per_node: 0" in proc.stdout


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_summary_artifacts_and_report_command(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    proc = mlpx(tmp_path, "-m", at, *QUICK, "optimizer=sgd,adam", "trainer.seed=0,1")
    assert proc.returncode == 0, proc.stderr
    assert "mlpx: sweep summary: 4 runs: 4 finished, 0 failed" in proc.stderr
    parents, children = split(all_runs(uri))
    pid = parents[0].info.run_id
    assert {
        "summary/sweep_summary.csv",
        "summary/sweep_summary.md",
        "summary/sweep_summary_by_seed.csv",
        "summary/objective_vs_optimizer.png",
        "summary/objective_vs_trainer.seed.png",
    } <= artifact_paths(uri, pid)
    table = artifact_text(uri, pid, "summary/sweep_summary.csv", tmp_path / "a")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert {r["run_id"] for r in rows} == {r.info.run_id for r in children}
    assert {(r["optimizer"], r["trainer.seed"]) for r in rows} == {
        ("sgd", "0"),
        ("sgd", "1"),
        ("adam", "0"),
        ("adam", "1"),
    }
    assert all(r["status"] == "FINISHED" and float(r["objective"]) > 0 for r in rows)
    md = artifact_text(uri, pid, "summary/sweep_summary.md", tmp_path / "b")
    assert "Mean ± std over `trainer.seed`, grouped by optimizer" in md
    parent = client(uri).get_run(pid)
    assert parent.data.tags["failed_jobs"] == "0"
    assert parent.data.metrics["best_objective"] > 0

    # The command prints the same Markdown, and writes CSV.
    out = run_module(
        "mlpx.app.report", tmp_path, "--tracking-uri", uri, "--parent", pid, "--csv", "t.csv"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == md.strip()
    assert (tmp_path / "t.csv").read_text() == table
    # MLFLOW_TRACKING_URI and --experiment: every run, the varying params as columns.
    out = run_module(
        "mlpx.app.report", tmp_path, "--experiment", "mlpx", env=mlpx_env(MLFLOW_TRACKING_URI=uri)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("## Experiment mlpx") and "optimizer.name" in out.stdout
    assert out.stdout.count("| FINISHED |") == 4  # children only, not the parent
    out = run_module(
        "mlpx.app.report", tmp_path, "--tracking-uri", uri, "--parent", pid, "--group-by-seed"
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "| run | status |" not in out.stdout
    assert any(line.startswith("| sgd | 0,1 | 2 | 0 | ") and " ± " in line for line in lines)
    out = mlpx_report(tmp_path, "--tracking-uri", uri, "--experiment", "nope")
    assert out.returncode == 2 and "no experiment 'nope'" in out.stderr and "mlpx" in out.stderr


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_a_failing_job_is_listed_and_the_others_finish(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    proc = mlpx(tmp_path, "-m", at, *LEAN, "optimizer=sgd", "optimizer.lr=1e9,0.1")
    assert proc.returncode == 0, proc.stderr
    parents, children = split(all_runs(uri))
    status = {r.data.params["optimizer.lr"]: r.info.status for r in children}
    assert status == {"1000000000.0": "FAILED", "0.1": "FINISHED"}
    parent = client(uri).get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"  # even though a child failed
    assert parent.data.tags["failed_jobs"] == "1" and parent.data.tags["finished_jobs"] == "1"
    md = artifact_text(uri, parent.info.run_id, "summary/sweep_summary.md", tmp_path / "a")
    failed = next(line for line in md.splitlines() if "| FAILED |" in line)
    assert "1000000000.0" in failed and "diverged" in failed


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@needs_wiring
def test_stop_on_failure_stops_the_sweep(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    proc = mlpx(
        tmp_path,
        "-m",
        at,
        *LEAN,
        "sweep.stop_on_failure=true",
        "optimizer=sgd",
        "optimizer.lr=1e9,0.1",
    )
    assert proc.returncode != 0
    parents, children = split(all_runs(uri))
    assert [r.info.status for r in children] == ["FAILED"]  # lr=0.1 never ran
    parent = client(uri).get_run(parents[0].info.run_id)
    assert parent.info.status == "FAILED" and parent.data.tags["failed_jobs"] == "1"
    assert parent.data.tags["mlpx.sweep_stopped"] == "true"


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@needs_wiring
def test_resume_skips_finished_configs_and_reruns_failed_ones(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    sweep = ("-m", at, *LEAN, "optimizer=sgd", "optimizer.lr=1e9,0.1")
    assert mlpx(tmp_path, *sweep).returncode == 0
    first = all_runs(uri)
    assert len(first) == 3
    assert all(r.data.tags.get("mlpx.config_hash") for r in split(first)[1])

    proc = mlpx(tmp_path, *sweep)  # again: lr=0.1 is skipped, lr=1e9 runs (and fails) again
    assert proc.returncode == 0, proc.stderr
    assert "skipped: this config already has a FINISHED run" in proc.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 1  # the same parent, reopened
    assert sorted(r.info.status for r in children) == ["FAILED", "FAILED", "FINISHED"]
    parent = client(uri).get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlpx.launches"] == "2"
    assert parent.data.tags["jobs"] == "2"  # one row per config: the retry replaces the first

    proc = mlpx(tmp_path, *sweep, "sweep.force=true")  # everything again, a new parent
    assert proc.returncode == 0, proc.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 2 and len(children) == 5


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@needs_wiring
def test_a_complete_sweep_launched_again_creates_no_runs(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    sweep = ("-m", at, *LEAN, "logger.log_model=true", "optimizer=sgd,adam")
    assert mlpx(tmp_path, *sweep).returncode == 0
    before = {r.info.run_id for r in all_runs(uri)}
    objectives = {r.info.run_id: r.data.metrics["objective"] for r in split(all_runs(uri))[1]}
    proc = mlpx(tmp_path, *sweep)
    assert proc.returncode == 0, proc.stderr
    assert {r.info.run_id for r in all_runs(uri)} == before
    assert proc.stderr.count("skipped: this config already has a FINISHED run") == 2
    assert "warning" not in proc.stderr  # the best model is linked to the parent once
    (parent,) = split(all_runs(uri))[0]
    assert len(logged_model_ids(client(uri), parent.info.run_id)) == 1
    for rid, value in objectives.items():
        assert f"objective {value:.4f}" in proc.stderr, rid


def stop_at_second_job(tmp_path: Path, sweep: tuple[str, ...], stop: Any) -> int:
    """Run ``mlpx *sweep`` in its own session, call ``stop(proc)`` once the second job
    trains ("mlpx: <run name> on Dataset(...)" on stderr) and return its exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpx", *sweep],
        cwd=tmp_path,
        env=mlpx_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        started = 0
        for line in proc.stderr:
            started += " on Dataset(" in line
            if started == 2:
                stop(proc)
                break
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@needs_wiring
def test_an_interrupted_sweep_completes_when_launched_again(tmp_path: Path) -> None:
    uri, at = store(tmp_path)
    sweep = ("-m", at, "dataset=digits", "trainer.epochs=15", "trainer.seed=0,1,2", *LEAN[2:])
    # Ctrl-C to mlpx alone while the 2nd job trains
    stop_at_second_job(tmp_path, sweep, lambda proc: proc.send_signal(signal.SIGINT))
    parents, first = split(all_runs(uri))
    assert 1 <= sum(r.info.status == "FINISHED" for r in first) < 3, "not interrupted"
    assert parents[0].info.status == "KILLED"
    assert parents[0].data.tags["mlpx.sweep_stopped"] == "true"

    again = mlpx(tmp_path, *sweep)
    assert again.returncode == 0, again.stderr
    parents, children = split(all_runs(uri))
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [r.data.params["trainer.seed"] for r in children if r.info.status == "FINISHED"]
    assert sorted(finished) == ["0", "1", "2"]  # each config once: no duplicates
    table = artifact_text(uri, parents[0].info.run_id, "summary/sweep_summary.csv", tmp_path / "a")
    assert sorted(r["trainer.seed"] for r in csv.DictReader(io.StringIO(table))) == ["0", "1", "2"]


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stopped_joblib_sweep_leaves_no_run_running(tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or a scheduler's
    SIGTERM to mlpx alone while two joblib workers train: loky kills the workers, and the
    launching process ends their runs KILLED (mlpx.app.sweep.end_orphaned_runs)."""
    uri, at = store(tmp_path)
    sweep = (
        "-m", at, "dataset=digits", "trainer.epochs=1000", "trainer.early_stopping.patience=0",
        "trainer.seed=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *LEAN[2:],
    )  # fmt: skip

    def stop(proc: subprocess.Popen) -> None:
        time.sleep(0.5)  # both runs exist and train (1000 epochs: ~7 s here, never done yet)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)

    returncode = stop_at_second_job(tmp_path, sweep, stop)
    assert returncode == (130 if how == "ctrl-c" else 143)
    parents, children = split(all_runs(uri))
    assert len(children) >= 2
    assert [r.info.status for r in children if r.info.status == "RUNNING"] == []
    assert all(r.info.end_time is not None for r in children)
    killed = [r for r in children if r.info.status == "KILLED"]
    assert killed and all("interrupted" in r.data.tags.get("error", "") for r in killed)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert parents[0].data.tags["mlpx.sweep_stopped"] == "true"


@pytest.mark.slow
def test_sweep_against_a_real_tracking_server(tmp_path: Path, shared_mlflow_server: str) -> None:
    """`mlflow server` on 127.0.0.1 (SQLite backend, proxied artifacts), a 2-job sweep sent
    through MLFLOW_TRACKING_URI, the runs read back over HTTP."""
    import requests

    base = shared_mlflow_server  # (its own experiment, srv)
    work = tmp_path / "work"
    work.mkdir()
    env = mlpx_env(MLFLOW_TRACKING_URI=base)
    proc = mlpx(work, "-m", *LEAN, "optimizer=sgd,adam", "logger.experiment_name=srv", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (work / "mlflow.db").exists()  # nothing went to a local store

    # Read back over HTTP, with the REST API itself.
    exp = requests.get(
        f"{base}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": "srv"},
        timeout=10,
    ).json()["experiment"]
    found = requests.post(
        f"{base}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [exp["experiment_id"]], "max_results": 100},
        timeout=10,
    ).json()["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in found]
    parents = [t for t in tags if t.get("mlpx.sweep") == "parent"]
    children = [(r, t) for r, t in zip(found, tags) if "mlflow.parentRunId" in t]
    assert len(parents) == 1 and len(children) == 2
    assert all(r["info"]["status"] == "FINISHED" for r, _ in children)
    assert parents[0]["failed_jobs"] == "0"
    pid = next(r["info"]["run_id"] for r, t in zip(found, tags) if t in parents)
    listed = requests.get(
        f"{base}/api/2.0/mlflow/artifacts/list",
        params={"run_id": pid, "path": "summary"},
        timeout=10,
    ).json()
    assert "summary/sweep_summary.md" in {f["path"] for f in listed.get("files", [])}

    out = mlpx_report(work, "--parent", pid, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("| FINISHED |") == 2


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_no_figures_means_no_summary_figures(tmp_path: Path) -> None:
    """logger.log_figures=false: the parent gets its tables but no objective_vs_<key>.png."""
    uri, at = store(tmp_path)
    proc = mlpx(tmp_path, "-m", at, *LEAN, "trainer.seed=0,1")
    assert proc.returncode == 0, proc.stderr
    parents, _ = split(all_runs(uri))
    paths = artifact_paths(uri, parents[0].info.run_id)
    assert "summary/sweep_summary.csv" in paths
    assert not [p for p in paths if p.endswith(".png")], paths

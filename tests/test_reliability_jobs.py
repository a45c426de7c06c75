"""Issue 19, case 13: identical sweeps at once, empty sweeps, hydra.job.chdir, resume by run
id leaving nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpx.app.safeguards import ConfigClaim, anchor_store, empty_sweeps
from tests.cli_helpers import mlpx_env, run_mlpx, runs_of


def test_empty_sweeps_are_found() -> None:
    assert empty_sweeps(["trainer.seed=range(0)", "dataset=iris"]) == ["trainer.seed=range(0)"]
    assert empty_sweeps(["trainer.seed=range(2,2)"]) == ["trainer.seed=range(2,2)"]
    assert empty_sweeps(["trainer.seed=range(2)", "optimizer=sgd,adam"]) == []


def test_anchor_store_keeps_the_default_store_in_the_launch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    job = tmp_path / "outputs" / "job"
    job.mkdir(parents=True)
    monkeypatch.chdir(job)
    cfg = {"logger": {"name": "mlflow", "tracking_uri": None}}
    assert anchor_store(cfg, str(tmp_path))["logger"]["tracking_uri"] == (
        f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    rel = {"logger": {"name": "mlflow", "tracking_uri": "sqlite:///runs.db"}}
    assert anchor_store(rel, str(tmp_path))["logger"]["tracking_uri"] == (
        f"sqlite:///{tmp_path / 'runs.db'}"
    )
    http = {"logger": {"name": "mlflow", "tracking_uri": "http://127.0.0.1:5000"}}
    assert anchor_store(http, str(tmp_path)) == http
    assert os.getcwd() == str(job)


def test_config_claim_is_exclusive_across_processes() -> None:
    claim = ConfigClaim("sqlite:////x/test-claim.db", "abc").acquire()
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except OSError:\n    print('held')"
    )
    held = subprocess.run([sys.executable, "-c", probe, str(claim.path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    claim.release()
    free = subprocess.run([sys.executable, "-c", probe, str(claim.path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert (held.stdout.strip(), free.stdout.strip()) == ("held", "free")


@pytest.mark.slow
@pytest.mark.usefixtures("sqlite_store")  # an empty store made before (not the point here)
def test_two_identical_sweeps_started_together_train_each_config_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2",
            "trainer.seed=0,1"]  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-m", "mlpx", *args, f"hydra.sweep.dir=sweep{i}"],
                         cwd=tmp_path, env=mlpx_env(), stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]  # fmt: skip
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    trained = [r for r in runs_of(uri) if "epoch" in r.data.metrics]
    seeds = sorted(r.data.params["trainer.seed"] for r in trained)
    assert seeds == ["0", "1"], "".join(errors)  # each config trained once, not twice


@pytest.mark.slow
def test_empty_sweep_leaves_no_parent(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_mlpx(tmp_path, "-m", f"logger.tracking_uri={uri}", "trainer.seed=range(0)")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "mlpx: error: trainer.seed=range(0) gives no value, so the sweep would have no job: "
        "give at least one"
    ]
    assert not (tmp_path / "mlflow.db").exists() or runs_of(uri) == []


@pytest.mark.slow
def test_job_chdir_keeps_the_store_where_mlpx_was_launched(tmp_path: Path) -> None:
    done = run_mlpx(tmp_path, "hydra.job.chdir=true", "dataset=iris", "trainer.epochs=1")
    assert done.returncode == 0, done.stderr
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("mlflow.db")] == ["mlflow.db"]
    assert len(runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}")) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("sqlite_store")  # an empty store made before (not the point here)
def test_resume_by_run_id_leaves_no_temporary_folder(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = mlpx_env(TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    first = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2",
                     env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (run,) = runs_of(uri)
    again = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=3",
                     f"trainer.resume={run.info.run_id}", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir() if "resume" in p.name) == []

"""SLURM for real (slow): tools/slurm_cluster.sh starts a one-node cluster (munged, slurmctld,
slurmd on this machine, from Debian's slurm-wlm and munge), and a 4-job sweep goes through
``hydra/launcher=slurm`` (submitit: sbatch, a job array, srun in each job) into a SQLite
store on a path the jobs share; the parent and the 4 children are read back from MLflow and
SLURM's own record says the 4 array tasks COMPLETED.

Skips, saying why, only when the cluster cannot start: slurm-wlm/munge not installed, not
root (and no password-less sudo: slurmd must be root), or the script's own error (the tail
of the daemon's log). ``.ci/run`` installs slurm-wlm and munge, so CI runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import free_port, mlpx_env, run_mlpx, runs_of

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "slurm_cluster.sh"


def as_root() -> list[str] | None:
    """The prefix that runs the script as root ([] when we are root), None when we cannot."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], check=False).returncode == 0:
        return ["sudo", "-n", "-E"]
    return None


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """A running one-node cluster in a temporary folder; yields the environment (SLURM_CONF)
    in which sbatch/squeue reach it; stops the daemons and removes the folder at the end."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    prefix = as_root()
    if prefix is None:
        pytest.skip("the SLURM cluster needs root (slurmd starts jobs as their users)")
    folder = tempfile.mkdtemp(prefix="mlpx-slurm-")
    os.chmod(folder, 0o755)
    env = dict(
        os.environ,
        MLPX_SLURM_DIR=folder,
        MLPX_SLURM_CTLD_PORT=str(free_port()),
        MLPX_SLURM_D_PORT=str(free_port()),
    )
    started = subprocess.run(
        [*prefix, "bash", str(SCRIPT), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    try:
        if started.returncode != 0:
            pytest.skip(f"the SLURM cluster could not start: {started.stderr.strip()[-1500:]}")
        yield {"SLURM_CONF": f"{folder}/slurm.conf"}
    finally:
        subprocess.run([*prefix, "bash", str(SCRIPT), "stop"], env=env, check=False, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_four_job_sweep_through_the_slurm_launcher(slurm: dict[str, str], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = mlpx_env(**slurm)
    proc = run_mlpx(
        tmp_path,
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",  # two jobs at once on a 2-CPU node
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"logger.tracking_uri={uri}",
        "dataset=iris",
        "trainer.epochs=2",
        "optimizer=sgd,adam",
        "trainer.seed=0,1",
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "4 runs: 4 finished, 0 failed" in proc.stderr

    runs = runs_of(uri)
    parents = [r for r in runs if r.data.tags.get("mlpx.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4 and len(runs) == 5
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted((r.data.params["optimizer.name"], r.data.params["trainer.seed"])
                  for r in children) == [("adam", "0"), ("adam", "1"), ("sgd", "0"),
                                         ("sgd", "1")]  # fmt: skip

    # SLURM ran them: submitit's folders are named after the job ids (<array>_<task>), and
    # slurmctld still holds the finished array (MinJobAge=300 s) with 4 COMPLETED tasks. A
    # task's result file exists a moment before SLURM ends it (COMPLETING): wait for that.
    logs = sorted(tmp_path.glob("multirun/*/*/.submitit/*/*_log.out"))
    assert len(logs) == 4
    array = {p.parent.name.split("_")[0] for p in logs}
    assert len(array) == 1
    job = array.pop()
    ending = {"COMPLETED", "COMPLETING", "RUNNING"}
    deadline = time.monotonic() + 60
    states, shown = array_states(job, env)
    while states != ["COMPLETED"] * 4 and set(states) <= ending and time.monotonic() < deadline:
        time.sleep(1)
        states, shown = array_states(job, env)
    assert states == ["COMPLETED"] * 4, shown


def array_states(job: str, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """The sorted JobState of each task of array ``job`` (scontrol), and scontrol's lines."""
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", job],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted(re.search(r"JobState=(\S+)", line).group(1) for line in shown), shown

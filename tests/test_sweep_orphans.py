"""A sweep stopped while its jobs ran in other processes (joblib's workers, killed by
loky when Ctrl-C or a SIGTERM stops the sweep) leaves no run RUNNING:
mlpx.app.sweep.note_job_process / end_orphaned_runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpx.app.sweep import JOBS_DIR, _alive, end_orphaned_runs, note_job_process
from tests.cli_helpers import client


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def new_run(uri: str) -> str:
    c = client(uri)
    exp = c.get_experiment_by_name("orphans") or c.get_experiment(c.create_experiment("orphans"))
    return c.create_run(exp.experiment_id).info.run_id


def note(sweep_dir: Path, run_id: str, host: str, pid: int) -> None:
    (sweep_dir / JOBS_DIR).mkdir(parents=True, exist_ok=True)
    (sweep_dir / JOBS_DIR / run_id).write_text(f"{host} {pid}\n")


def test_note_job_process_records_this_host_and_pid(tmp_path: Path) -> None:
    note_job_process(tmp_path, "abc")
    assert (tmp_path / JOBS_DIR / "abc").read_text().split() == [
        socket.gethostname(),
        str(os.getpid()),
    ]


def test_note_job_process_in_an_unwritable_place_does_not_fail(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    note_job_process(tmp_path / "file", "abc")  # a file where the folder should be
    assert not (tmp_path / "file" / JOBS_DIR).exists()


def test_alive_tells_running_dead_and_zombie_processes() -> None:
    assert _alive(os.getpid())
    assert not _alive(dead_pid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, never reaped: a zombie
    try:
        deadline = time.monotonic() + 5
        while _alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child.pid)
    finally:
        child.wait()


def test_only_runs_of_dead_job_processes_on_this_host_end_killed(
    tmp_path: Path, sqlite_store: str
) -> None:
    uri, host = sqlite_store, socket.gethostname()
    orphan, mine, elsewhere, finished, alive = (new_run(uri) for _ in range(5))
    client(uri).set_terminated(finished, "FINISHED")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        note(tmp_path, orphan, host, dead_pid())
        note(tmp_path, mine, host, os.getpid())  # the launching process's own job
        note(tmp_path, elsewhere, "another-node", dead_pid())
        note(tmp_path, finished, host, dead_pid())
        note(tmp_path, alive, host, sleeper.pid)
        (tmp_path / JOBS_DIR / "garbled").write_text("no pid here")
        assert end_orphaned_runs(tmp_path, uri, wait=0.3) == [orphan]
    finally:
        sleeper.kill()
        sleeper.wait()
    c = client(uri)
    run = c.get_run(orphan)
    assert run.info.status == "KILLED" and run.info.end_time is not None
    assert "interrupted" in run.data.tags["error"]
    for run_id in (mine, elsewhere, alive):
        assert c.get_run(run_id).info.status == "RUNNING"
    assert c.get_run(finished).info.status == "FINISHED"


def test_a_job_process_that_ends_within_the_wait_is_waited_for(
    tmp_path: Path, sqlite_store: str
) -> None:
    run_id = new_run(sqlite_store)
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    note(tmp_path, run_id, socket.gethostname(), job.pid)
    try:
        assert end_orphaned_runs(tmp_path, sqlite_store, wait=10) == [run_id]
    finally:
        job.wait()
    assert client(sqlite_store).get_run(run_id).info.status == "KILLED"


def test_no_notes_no_work(tmp_path: Path) -> None:
    assert end_orphaned_runs(tmp_path, "sqlite:///nowhere.db") == []


@pytest.mark.parametrize("bad", ["", "host", "host notapid"])
def test_garbled_notes_are_skipped(tmp_path: Path, sqlite_store: str, bad: str) -> None:
    (tmp_path / JOBS_DIR).mkdir()
    (tmp_path / JOBS_DIR / "x").write_text(bad)
    assert end_orphaned_runs(tmp_path, sqlite_store, wait=0) == []

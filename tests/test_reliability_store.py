"""Issue 19, stores: atomic creation, half-made stores rebuilt, concurrent creation waited for,
stores that keep nothing refused, full disks and unwritable folders reported in one line."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpx.tracking import TrackingError, check_tracking_uri
from mlpx.tracking.sqlite_store import (
    compute_schema_head,
    ensure_sqlite_store,
    inspect_store,
    schema_head,
)
from mlpx.tracking.store import is_permanent, is_transient, open_client, store_error
from tests.cli_helpers import mlpx_env, run_mlpx, runs_of


def half_made(path: Path) -> Path:
    """A store whose creation was killed (SIGKILL) in the middle of MLflow's migrations."""
    code = f"from mlflow.tracking import MlflowClient; MlflowClient('sqlite:///{path}')"
    for delay in (0.9, 1.2, 0.7, 1.5, 1.0, 2.0, 0.5, 0.8):
        for p in (path, Path(f"{path}-journal")):
            p.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
        while proc.poll() is None and not Path(f"{path}-journal").exists():
            time.sleep(0.002)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        con = sqlite3.connect(path)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        con.close()
        if any(t.startswith("_alembic_tmp_") for t in tables):
            return path  # stopped inside a migration: MLflow alone cannot open it again
    pytest.skip("could not stop MLflow in the middle of its migrations on this machine")


def age(path: Path, seconds: float = 60.0) -> None:
    """Make ``path`` look untouched for ``seconds`` (an abandoned store, not one in creation)."""
    then = time.time() - seconds
    for p in (path, Path(f"{path}-journal")):
        if p.exists():
            os.utime(p, (then, then))


# ------------------------------------------------------------------ quick


def test_schema_head_is_what_a_fresh_store_has(tmp_path: Path) -> None:
    """MLflow's schema head is read through one private name: fail here if it moves."""
    db = tmp_path / "mlflow.db"
    open_client(f"sqlite:///{db}").search_experiments()
    state = inspect_store(db)
    assert compute_schema_head() and state.complete and state.runs == 0
    assert schema_head() == compute_schema_head()  # the cached head (mlflow_schema_head.json)
    assert not list(tmp_path.glob(".mlflow.db.mlpx-*"))  # the temporary store is gone


@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "sqlite:///", "sqlite://"])
def test_a_store_that_keeps_nothing_is_refused(uri: str) -> None:
    with pytest.raises(TrackingError, match=r"logger\.tracking_uri=.*keeps nothing"):
        check_tracking_uri(uri)


def test_full_disk_and_permission_errors_are_not_retried() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    full = MlflowException(
        "(sqlite3.OperationalError) database or disk is full", error_code=TEMPORARILY_UNAVAILABLE
    )
    locked = MlflowException(
        "(sqlite3.OperationalError) database is locked", error_code=TEMPORARILY_UNAVAILABLE
    )
    assert not is_transient(full) and is_permanent(full)
    assert is_transient(locked) and not is_permanent(locked)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
        wrapped = RuntimeError("artifact upload failed")
        wrapped.__cause__ = OSError(code, os.strerror(code))
        assert is_permanent(wrapped) and not is_transient(wrapped)
    message = str(store_error("sqlite:////x/mlflow.db", "log metrics", full))
    assert "Not retried" in message and "full" in message and "\n" not in message


def test_half_made_store_message_does_not_blame_concurrency() -> None:
    exc = RuntimeError("(sqlite3.OperationalError) table _alembic_tmp_metrics already exists")
    message = str(store_error("sqlite:////x/mlflow.db", "create a run", exc))
    assert "Several processes" not in message and "mlflow db upgrade" in message


# ------------------------------------------------------------------ real processes (slow)


@pytest.mark.slow
def test_a_store_killed_while_created_is_rebuilt(tmp_path: Path) -> None:
    db = half_made(tmp_path / "mlflow.db")
    age(db)
    uri = f"sqlite:///{db}"
    done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=1")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr  # (Hydra's log handler writes to stdout)
    assert "half-made" in out and "Traceback" not in out, out
    assert [r.info.status for r in runs_of(uri)] == ["FINISHED"]
    assert len(list(tmp_path.glob("mlflow.db.broken-*"))) == 1  # kept, never deleted


@pytest.mark.slow
def test_a_damaged_store_with_runs_is_left_alone(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")  # (open_client would remember it as complete)
    client.create_run(client.create_experiment("x"))
    with sqlite3.connect(db) as con:  # a migration that stopped half-way, later
        con.execute("CREATE TABLE _alembic_tmp_metrics (x INTEGER)")
    age(db)
    with pytest.raises(TrackingError, match=r"holds 1 runs, so mlpx leaves it"):
        ensure_sqlite_store(db, timeout=1)
    assert inspect_store(db).runs == 1 and not list(tmp_path.glob("*.broken-*"))


@pytest.mark.slow
def test_mlflow_ui_started_at_the_same_moment_on_a_fresh_store_is_waited_for(
    tmp_path: Path,
) -> None:
    """``mlflow ui`` creates a fresh store in place; mlpx started with it used to fail once
    (``table _alembic_tmp_experiments already exists``)."""
    import signal
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    ui = subprocess.Popen(
        [str(mlflow_cli), "ui", "--backend-store-uri", uri, "--port", str(port), "--workers", "1"],
        cwd=tmp_path, env=mlpx_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=1")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    assert done.returncode == 0, done.stderr
    assert [r.info.status for r in runs_of(uri)] == ["FINISHED"]


@pytest.mark.slow
@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "sqlite:///"])
def test_in_memory_store_one_line_nonzero(tmp_path: Path, uri: str) -> None:
    done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("mlpx: error: logger.tracking_uri=") and len(lines) == 1, lines


# ------------------------------------------------------------------ full disks, unwritable folders


def test_unwritable_artifact_folder_is_found_before_the_run(tmp_path: Path) -> None:
    from mlpx.tracking import MlflowTracker, prepare_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_store(uri, "other")  # the store exists; the experiment's folder will not be writable
    (tmp_path / "mlruns").write_text("a file where the artifact folders go")
    with pytest.raises(TrackingError, match=r"artifact folder .*mlruns.* cannot be written"):
        MlflowTracker(uri, "exp", "run")
    assert runs_of(uri, "exp") == []  # found before any run was created


def test_a_permanent_store_error_is_raised_once_not_retried(tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from mlpx.tracking import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp", "run", flush_seconds=1e9)
    calls = []

    def full(*args: object, **kwargs: object) -> None:  # the write layer, on a full disk
        calls.append(1)
        raise MlflowException(
            "(sqlite3.OperationalError) database or disk is full", TEMPORARILY_UNAVAILABLE
        )

    tracker._client.log_batch = full  # fault injection into this tracker's own client
    tracker.log_metrics({"a": 1.0}, step=1)
    with pytest.raises(Exception, match="database or disk is full"):
        tracker.flush()
    assert len(calls) == 1, "a full disk was retried"
    tracker.finish("FAILED", error="disk full")
    assert runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp")[0].info.status == "FAILED"


@pytest.fixture
def small_disk(tmp_path: Path):
    """A folder on its own tmpfs of a few MB (root and mount(8) needed; else skipped)."""

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{size}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
                              capture_output=True, check=False)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    mounted: list[Path] = []
    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", folder], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` up to ``leave`` bytes."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"x" * 65536)
                fh.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def one_error_line(done: subprocess.CompletedProcess, *words: str) -> str:
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("mlpx: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "retrying" not in done.stderr, done.stderr[-3000:]
    assert len(done.stderr.splitlines()) < 20, done.stderr[-3000:]
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


@pytest.mark.slow
def test_full_disk_under_an_existing_store(tmp_path: Path, small_disk) -> None:
    disk = small_disk("3m")
    uri = f"sqlite:///{disk / 'mlflow.db'}"
    open_client(uri).search_experiments()
    fill(disk, 60_000)
    done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=digits", "trainer.epochs=3",
                    "trainer.log_every_n_steps=1")  # fmt: skip
    one_error_line(done, "full", "Not retried")
    assert [r.info.status for r in runs_of(uri)] in ([], ["FAILED"])  # never left RUNNING


@pytest.mark.slow
def test_full_disk_under_a_fresh_store(tmp_path: Path, small_disk) -> None:
    disk = small_disk("300k")
    uri = f"sqlite:///{disk / 'mlflow.db'}"
    done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=1")
    one_error_line(done, "full", "Not retried")
    assert sorted(p.name for p in disk.iterdir()) == []  # no half-made store left behind


@pytest.mark.slow
def test_unwritable_artifact_folder_one_line_at_the_start(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri).search_experiments()
    (tmp_path / "mlruns").write_text("a file where the artifact folders go")
    done = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=1")
    one_error_line(done, "artifact folder", "cannot be written")
    assert runs_of(uri) == []

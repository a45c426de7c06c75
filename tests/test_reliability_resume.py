"""Issue 19, resume: SIGKILL at any moment then resume gives an uninterrupted run's history;
a resume never changes a FINISHED run nor trains a config its params do not describe."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpx.checkpoint import latest_checkpoint, load_checkpoint
from tests.cli_helpers import client, mlpx_env, run_mlpx, runs_of

ARGS = [
    "dataset=digits",
    "trainer.epochs=8",
    "trainer.checkpoint_every=1",
    "trainer.checkpoint_min_seconds=0",  # a checkpoint after every epoch, however fast
    "trainer.log_every_n_steps=3",
    "trainer.early_stopping.patience=0",
    "trainer.progress=true",
]
#: No figures, no model: not part of a run's history (its metrics, compared whole). Only the
#: early kill goes lean: 0.2 s after "epoch 5/" a lean run can be FINISHED already (its last
#: 3 epochs and its end take less), and the kill after training is meant to hit them.
LEAN = ["logger.log_figures=false", "logger.log_model=false"]


def history(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a run: key -> [(step, value)] sorted by step (duplicates kept)."""
    c = client(uri)
    keys = c.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in c.get_metric_history(run_id, k)) for k in keys}


def kill_after(cwd: Path, args: list[str], marker: str, delay: float) -> None:
    """Start ``mlpx *args``, SIGKILL it ``delay`` s after a stderr line starts with
    ``marker``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpx", *args],
        cwd=cwd,
        env=mlpx_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(marker):
            break
    else:
        raise AssertionError(f"{marker!r} never printed:\n{''.join(seen)}")
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> dict[str, list[tuple[int, float]]]:
    """The history of an uninterrupted run with the same seed."""
    tmp = tmp_path_factory.mktemp("reference")
    shutil.copyfile(store_template, tmp / "mlflow.db")  # (creating a store is not tested here)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    done = run_mlpx(tmp, f"logger.tracking_uri={uri}", *ARGS, *LEAN, "hydra.run.dir=run")
    assert done.returncode == 0, done.stderr
    (run,) = runs_of(uri)
    return history(uri, run.info.run_id)


@pytest.mark.slow
@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.parametrize(
    ("marker", "delay"),
    [("epoch   2/", 0.0), ("epoch   5/", 0.2), ("mlpx: done", 0.0)],
    ids=["early", "mid-epoch", "after-training"],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, reference: dict, marker: str, delay: float
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [f"logger.tracking_uri={uri}", *ARGS, *(LEAN if marker == "epoch   2/" else [])]
    kill_after(tmp_path, [*args, "hydra.run.dir=run"], marker, delay)
    (killed,) = runs_of(uri)
    assert killed.info.status == "RUNNING"  # SIGKILL: nothing could end it
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt is not None
    done = run_mlpx(tmp_path, *args, f"trainer.resume={ckpt}", "hydra.run.dir=run2")
    assert done.returncode == 0, done.stderr
    (run,) = runs_of(uri)  # the same run, continued
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    got = history(uri, run.info.run_id)
    assert sorted(got) == sorted(reference)
    for key, points in reference.items():
        steps = [s for s, _ in got[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice"
        assert got[key] == points, key  # no gap, same values


@pytest.mark.slow
@pytest.mark.usefixtures("sqlite_store")
def test_resume_of_a_finished_run_never_changes_it(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = [f"logger.tracking_uri={uri}", "dataset=iris", "trainer.checkpoint_every=1",
            "trainer.checkpoint_min_seconds=0", "logger.log_figures=false",
            "logger.log_model=false"]  # fmt: skip
    first = run_mlpx(tmp_path, *base, "trainer.epochs=4", "hydra.run.dir=run")
    assert first.returncode == 0, first.stderr
    (old,) = runs_of(uri)
    before = history(uri, old.info.run_id)
    older = sorted((tmp_path / "run" / "checkpoints").glob("step_*.npz"))[0]  # epoch 2

    for change in ["optimizer.lr=0.5", "dataset.seed=3", "trainer.batch_size=8",
                   "backend.dtype=float32"]:  # fmt: skip
        key = change.split("=")[0]
        bad = run_mlpx(tmp_path, *base, "trainer.epochs=4", change, f"trainer.resume={older}")
        assert bad.returncode == 2, bad.stderr
        lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("mlpx: error:")]
        assert len(lines) == 1 and key in lines[0] and "Traceback" not in bad.stderr, bad.stderr
    # a bad checkpoint (a failed resume) does not turn the FINISHED run FAILED either
    broken = tmp_path / "broken.npz"
    broken.write_bytes(older.read_bytes()[:100])
    bad = run_mlpx(tmp_path, *base, "trainer.epochs=4", f"trainer.resume={broken}")
    assert bad.returncode == 2 and "truncated" in bad.stderr, bad.stderr

    # the same config, more epochs, by run id: a new run linked to the old one
    more = run_mlpx(tmp_path, *base, "trainer.epochs=6", f"trainer.resume={old.info.run_id}")
    assert more.returncode == 0, more.stderr
    runs = {r.info.run_id: r for r in runs_of(uri)}
    assert len(runs) == 2
    same = runs.pop(old.info.run_id)
    (new,) = runs.values()
    assert same.info.status == "FINISHED" and history(uri, old.info.run_id) == before
    assert new.info.status == "FINISHED"
    assert new.data.tags["mlpx.resumed_from_run"] == old.info.run_id
    assert new.data.params["trainer.epochs"] == "6"
    epochs = [v for _, v in history(uri, new.info.run_id)["epoch"]]
    assert epochs == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # the checkpoint's history, then more


@pytest.mark.slow
def test_resume_restores_the_checkpoint_dtype(tmp_path: Path) -> None:
    first = run_mlpx(tmp_path, "logger=none", "dataset=iris", "trainer.epochs=2",
                     "backend.dtype=float32", "hydra.run.dir=run")  # fmt: skip
    assert first.returncode == 0, first.stderr
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert str(load_checkpoint(ckpt).model["dtype"]) == "float32"
    bad = run_mlpx(tmp_path, "logger=none", "dataset=iris", "trainer.epochs=3",
                   f"trainer.resume={ckpt}")  # fmt: skip
    assert bad.returncode == 2
    assert "backend.dtype" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr

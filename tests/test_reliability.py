"""Checkpoints, exact resume, interruption, divergence, bad input, reproducibility."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mlpx.checkpoint import (
    Checkpointer,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
)
from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MemoryTracker
from mlpx.train import EarlyStopping, Interrupted, StopRequest, TrainerSettings, fit
from tests.cli_helpers import mlpx_env, run_mlpx, runs_of


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


#: Runs whose figures, analyses and model no test of this file reads.
LEAN = ("analysis=off", "logger.log_figures=false", "logger.log_model=false")

CFG = TrainerSettings(
    epochs=6,
    batch_size=64,
    log_every_n_steps=7,
    early_stopping=EarlyStopping(patience=0),
    progress="false",
)


def fresh(data, seed: int = 0):
    rng = np.random.default_rng(seed)
    net = MLP([data.n_features, 32, data.n_classes], "relu", rng=rng)
    opt = make_optimizer("adam", lr=1e-3, schedule={"name": "cosine", "T_max": 50})
    return net, opt, rng


def test_six_epochs_equal_three_plus_resumed_three(digits, tmp_path: Path) -> None:
    net, opt, rng = fresh(digits)
    straight = MemoryTracker()
    fit(net, opt, digits, CFG, straight, rng=rng)

    net2, opt2, rng2 = fresh(digits)
    first = MemoryTracker()
    ckpt = Checkpointer(tmp_path, every=1, keep=2)
    fit(net2, opt2, digits, replace(CFG, epochs=3), first, rng=rng2, checkpointer=ckpt)
    assert len(list(tmp_path.glob("step_*.npz"))) == 2  # keep_checkpoints

    net3, opt3, rng3 = fresh(digits, seed=99)  # different start: everything comes from disk
    state = load_checkpoint(latest_checkpoint(tmp_path)).restore(net3, opt3, rng3)
    second = MemoryTracker()
    fit(net3, opt3, digits, CFG, second, rng=rng3, resume=state)

    for a, b in zip(net.parameters(), net3.parameters()):
        np.testing.assert_array_equal(a, b)  # bit-identical
    for key in ["train/loss", "val/loss", "val/accuracy", "grad_norm/global", "lr"]:
        combined = [p for p in first.metrics[key] if p[0] <= 3 * 20] + second.metrics[key]
        assert combined == straight.metrics[key], key


def test_interrupt_mid_epoch_checkpoints_and_resumes_exactly(digits, tmp_path: Path) -> None:
    net, opt, rng = fresh(digits)
    straight = MemoryTracker()
    fit(net, opt, digits, CFG, straight, rng=rng)

    class StopAt(MemoryTracker):
        """Asks to stop when step 47 is logged (mid-epoch: 20 steps per epoch)."""

        def __init__(self, stop: StopRequest) -> None:
            super().__init__()
            self.stop = stop

        def log_metrics(self, metrics, step):
            super().log_metrics(metrics, step)
            if step == 49:
                self.stop.signum = signal.SIGINT

    net2, opt2, rng2 = fresh(digits)
    stop = StopRequest()
    with pytest.raises(Interrupted) as info:
        fit(net2, opt2, digits, CFG, StopAt(stop), rng=rng2, stop=stop,
            checkpointer=Checkpointer(tmp_path, every=0, keep=1))  # fmt: skip
    assert info.value.step == 49 and info.value.epoch == 3
    checkpoint = load_checkpoint(info.value.checkpoint)
    assert checkpoint.state.step == 49 and checkpoint.state.pending  # rest of epoch 3

    net3, opt3, rng3 = fresh(digits, seed=5)
    state = checkpoint.restore(net3, opt3, rng3)
    fit(net3, opt3, digits, CFG, MemoryTracker(), rng=rng3, resume=state)
    for a, b in zip(net.parameters(), net3.parameters()):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_is_pickle_free_and_checked(digits, tmp_path: Path) -> None:
    net, opt, rng = fresh(digits)
    fit(net, opt, digits, replace(CFG, epochs=1), rng=rng,
        checkpointer=Checkpointer(tmp_path, every=1, keep=1))  # fmt: skip
    path = latest_checkpoint(tmp_path)
    with np.load(path, allow_pickle=False) as data:  # would raise if anything were pickled
        assert all(data[k].dtype != object for k in data.files)
    other = MLP([digits.n_features, 16, digits.n_classes], "relu", seed=0)
    with pytest.raises(CheckpointError, match=r"trainer.resume=.* does not fit this run"):
        load_checkpoint(path).restore(other, make_optimizer("adam"), np.random.default_rng())
    with pytest.raises(CheckpointError, match=r"trainer.resume: no checkpoint at"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"is not an mlpx checkpoint"):
        load_checkpoint(tmp_path / "junk.npz")


def test_same_config_and_seed_give_identical_metrics(digits) -> None:
    runs = []
    for _ in range(2):
        net, opt, rng = fresh(digits)
        tracker = MemoryTracker()
        fit(net, opt, digits, replace(CFG, epochs=2), tracker, rng=rng)
        runs.append(tracker.metrics)
    assert runs[0] == runs[1]


# ------------------------------------------------------------------ the command (slow)


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_kills_the_run_and_resume_completes(
    tmp_path: Path, sig: int, code: int
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        f"logger.tracking_uri={uri}",
        "trainer.epochs=400",
        "trainer.early_stopping.patience=0",
        "trainer.progress=true",
        "hydra.run.dir=run",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpx", *args],
        cwd=tmp_path,
        env=mlpx_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:  # wait until training is under way
        lines.append(line)
        if line.startswith("epoch   3/"):
            break
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == code, "".join(lines) + rest
    assert "trainer.resume=" in rest
    (run,) = runs_of(uri)
    assert run.info.status == "KILLED"
    ckpt = latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert ckpt is not None
    step = load_checkpoint(ckpt).state.step
    assert step >= 3 * 40

    done = run_mlpx(tmp_path, *args[:1], "trainer.epochs=5", "trainer.early_stopping.patience=0",
                    f"trainer.resume={ckpt}", "hydra.run.dir=run2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # trainer.epochs changed (400 -> 5): a new run linked to the killed one, which stays as
    # it was (its params say 400 epochs); the same epochs would continue the same run
    runs = {r.info.run_id: r for r in runs_of(uri)}
    assert runs.pop(run.info.run_id).info.status == "KILLED"
    (again,) = runs.values()
    assert again.info.status == "FINISHED" and again.data.params["trainer.epochs"] == "5"
    assert again.data.tags["mlpx.resumed"] == "true"
    assert again.data.tags["mlpx.resumed_from_run"] == run.info.run_id
    from mlflow.tracking import MlflowClient

    epochs = [m.value for m in MlflowClient(uri).get_metric_history(again.info.run_id, "epoch")]
    assert epochs[-1] == 5.0 and len(epochs) == len(set(epochs))  # no epoch logged twice


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_resume_by_run_id(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lean = ("analysis=off", "logger.log_figures=false")  # read: metrics, tags, checkpoint
    first = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2",
                     *lean)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (run,) = runs_of(uri)
    again = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=4",
                     *lean, f"trainer.resume={run.info.run_id}")  # fmt: skip
    assert again.returncode == 0, again.stderr
    runs = {r.info.run_id: r for r in runs_of(uri)}  # a FINISHED run is never changed:
    assert runs.pop(run.info.run_id).data.metrics["epoch"] == 2.0  # a new run goes on
    (new,) = runs.values()
    assert new.info.status == "FINISHED" and new.data.metrics["epoch"] == 4.0
    assert new.data.tags["mlpx.resumed_from_run"] == run.info.run_id


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_divergence_in_a_single_run_fails_it_with_a_tag(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "optimizer=sgd", "optimizer.lr=1e9")
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
    assert "training diverged at epoch 1, step" in line and "train/loss is nan" in line
    (run,) = runs_of(uri)
    assert run.info.status == "FAILED" and run.data.tags["diverged"] == "true"


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_divergence_inside_a_sweep_the_other_jobs_finish(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_mlpx(tmp_path, "-m", f"logger.tracking_uri={uri}", "dataset=iris",
                    "trainer.epochs=3", "optimizer=sgd", "optimizer.lr=0.1,1e9,0.05",
                    *LEAN)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    children = [r for r in runs_of(uri) if "mlflow.parentRunId" in r.data.tags]
    status = sorted((r.data.params["optimizer.lr"], r.info.status) for r in children)
    assert status == [("0.05", "FINISHED"), ("0.1", "FINISHED"), ("1000000000.0", "FAILED")]


@pytest.mark.usefixtures("sqlite_store")
@pytest.mark.slow
def test_runs_record_what_repeats_them(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # no figures and no model: neither is compared (the metrics of the analyses are)
    lean = ("logger.log_figures=false", "logger.log_model=false")
    proc = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2",
                    *lean)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run,) = runs_of(uri)
    tags = run.data.tags
    assert tags["python"] and tags["version.numpy"] == np.__version__
    assert tags["version.mlflow"] and tags["version.scikit-learn"]
    assert "config/config.yaml" in {
        a.path
        for a in __import__("mlflow")
        .tracking.MlflowClient(uri)
        .list_artifacts(run.info.run_id, "config")
    }
    again = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2",
                     *lean)  # fmt: skip
    assert again.returncode == 0
    a, b = runs_of(uri)
    assert a.data.metrics == b.data.metrics


BAD_INPUTS = [
    (["trainer.resume=/nonexistent/ckpt.npz"], "trainer.resume: no checkpoint at"),
    (["trainer.checkpoint_every=-1"], "trainer.checkpoint_every must be an integer >= 0"),
    (["trainer.keep_checkpoints=0"], "trainer.keep_checkpoints must be a positive integer"),
    (
        ["dataset=openml", "dataset.openml_name=mnist_784", "dataset.data_home=/nonexistent"],
        "could not be downloaded",
    ),
    (["hydra.run.dir=/proc/mlpx-cannot-write"], "cannot write the output folder"),
    (["model.widths=[64]", "model.init_std=-1"], "model.init_std must be a positive finite number"),
    (["model.widths=abc"], "model.widths must be a list of positive integers"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay"),
    (["optimizer=rmsprop", "optimizer.alpha=2"], "optimizer.alpha"),
    (["optimizer.schedule.name=step", "optimizer.schedule.gamma=0.5"], "step_size"),
    (["dataset=moons", "dataset.n_samples=5"], "dataset.n_samples must be"),
    (["dataset=iris", "+dataset.noise=0.1"], "dataset.noise is not a parameter of 'iris'"),
    (["optimizer.schedule.name=step", "optimizer.schedule.step_size=0"], "step_size"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps must be a positive integer"),
    (["trainer.eval_every=-2"], "trainer.eval_every must be a positive integer"),
    (["trainer.progress=sometimes"], "trainer.progress must be one of auto, true, false"),
    (["logger.tracking_uri=http://127.0.0.1:9"], "http://127.0.0.1:9"),
    (["backend=torch", "backend.device=tpu"], "backend.device must be one of cpu, cuda"),
    (["mode=eval"], "mode must be one of"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=lambda v: str(v)[:40])
def test_bad_input_one_line_nonzero_and_nothing_running(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if not any(o.startswith("logger.tracking_uri") for o in overrides):
        overrides = [f"logger.tracking_uri={uri}", *overrides]
    if overrides[-1].startswith("backend=torch"):
        pytest.importorskip("torch")
    started = time.perf_counter()
    proc = run_mlpx(tmp_path, *overrides, timeout=120)
    assert proc.returncode != 0
    errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert time.perf_counter() - started < 60
    if (tmp_path / "mlflow.db").exists():
        assert runs_of(uri) == []

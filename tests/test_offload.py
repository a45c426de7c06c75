"""The sweep's artifact helper (mlpx.app.offload): a run handed off to it ends with the same
figures, model, tags and status as a run that finished itself; a dead helper loses nothing."""

from __future__ import annotations

import numpy as np
import pytest

from mlpx.app import offload
from mlpx.app.offload import ArtifactWorker, DataSummary, NetArrays, RunTail, finish_tail
from mlpx.app.record import log_model_now
from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.tracking import MlflowTracker, prepare_store
from mlpx.tracking.base import ERROR_TAG
from mlpx.tracking.model import MODEL_NAME
from mlpx.train import EarlyStopping, TrainerSettings, fit

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    prepare_store(uri, "offload")
    return uri


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", val_size=0.2, test_size=0.2, seed=0)


def _trained(store: str, iris, name: str):
    """A run with 3 epochs of training logged and flushed, its network and result."""
    rng = np.random.default_rng(0)
    net = MLP([4, 8, 3], "relu", rng=rng)
    tracker = MlflowTracker(store, "offload", name)
    settings = TrainerSettings(epochs=3, batch_size=16, early_stopping=EarlyStopping())
    result = fit(net, make_optimizer("adam", lr=0.01), iris, settings, tracker, rng=rng)
    return tracker, net, result


def _tail(tracker, net, iris, result) -> RunTail:
    return RunTail(
        tracker.tracking_uri,
        tracker.run_id,
        figures=offload.figure_history(result.history),
        model={
            "net": NetArrays.of(net),
            "data": DataSummary.of(iris),
            "step": result.steps,
            "registered_model_name": None,
        },
    )


def _handed_off(store: str, iris, name: str) -> tuple:
    """A trained run handed off (RUNNING, every value stored) and its tail."""
    tracker, net, result = _trained(store, iris, name)
    tail = _tail(tracker, net, iris, result)
    tracker.hand_off()
    return tracker, tail


def _content(client, run_id: str) -> dict:
    run = client.get_run(run_id)
    files = sorted(f.path for f in client.list_artifacts(run_id, "figures"))
    return {
        "status": run.info.status,
        "figures": files,
        "model_uri": run.data.tags.get("mlpx.model_uri", ""),
        "tags": sorted(k for k in run.data.tags if k != "mlflow.runName"),
        "metrics": run.data.metrics,
        "models": len(run.outputs.model_outputs) if run.outputs else 0,
    }


def _predict(store: str, run_id: str, X: np.ndarray):
    mlflow.set_tracking_uri(store)
    try:
        return mlflow.pyfunc.load_model(f"runs:/{run_id}/{MODEL_NAME}").predict(X)
    finally:
        mlflow.set_tracking_uri(None)


def test_a_run_ended_by_the_helper_records_what_a_run_that_ends_itself_records(
    store: str, iris
) -> None:
    client = mlflow.MlflowClient(store)
    # The job does it itself (a single run, or sweep.artifact_worker=false).
    mine, net, result = _trained(store, iris, "itself")
    from mlpx.app.offload import log_figures

    log_figures(mine, result.history)
    log_model_now(mine, net, iris, result.steps, None)
    mine.finish("FINISHED")
    # The same training, handed off to a helper process.
    theirs, net2, result2 = _trained(store, iris, "helper")
    tail = _tail(theirs, net2, iris, result2)
    theirs.hand_off()
    assert client.get_run(theirs.run_id).info.status == "RUNNING"  # the helper ends it
    worker = ArtifactWorker(store)
    try:
        worker.submit(tail)
    finally:
        assert worker.close() == {}
    a, b = _content(client, mine.run_id), _content(client, theirs.run_id)
    assert a["status"] == b["status"] == "FINISHED"
    assert (
        a["figures"]
        == b["figures"]
        == [
            "figures/grad_norms.png",
            "figures/learning_curves.png",
        ]
    )
    assert a["tags"] == b["tags"] and a["metrics"] == b["metrics"]
    assert a["models"] == b["models"] == 1
    assert b["model_uri"].startswith("models:/") and b["model_uri"] != a["model_uri"]
    raw = iris.X_test * iris.scale + iris.mean
    pa, pb = _predict(store, mine.run_id, raw), _predict(store, theirs.run_id, raw)
    assert list(pa.columns) == list(pb.columns)
    np.testing.assert_allclose(pa.filter(like="proba").to_numpy(), pb.filter(like="proba"))


def test_a_dead_helper_s_runs_are_finished_by_the_main_process(
    store: str, iris, capfd: pytest.CaptureFixture[str]
) -> None:
    tracker, tail = _handed_off(store, iris, "orphan")
    worker = ArtifactWorker(store)
    worker._process.kill()  # the helper dies (out of memory, killed) before it gets the tail
    worker._process.wait()
    worker.submit(tail)
    assert worker.close() == {}
    content = _content(mlflow.MlflowClient(store), tracker.run_id)
    assert content["status"] == "FINISHED" and content["models"] == 1
    assert len(content["figures"]) == 2
    assert "the artifact helper process stopped" in capfd.readouterr().err


def test_a_tail_the_helper_could_not_finish_is_finished_by_the_main_process(
    store: str, iris
) -> None:
    tracker, tail = _handed_off(store, iris, "half-way")
    worker = ArtifactWorker(store)
    real = worker._acks

    class HelperGaveUp:  # what the helper sends when finish_tail raised
        def recv(self) -> tuple:
            real.close()
            return (tail.run_id, "OperationalError: database is locked", False)

    worker.pending[tail.run_id] = tail  # as submit() would, without sending it
    worker._acks = HelperGaveUp()
    assert worker._collect()
    assert worker.pending == {} and worker.errors == {}  # ended here, without an error
    content = _content(mlflow.MlflowClient(store), tracker.run_id)
    assert content["status"] == "FINISHED" and content["models"] == 1
    worker._tasks.close()


def test_a_figure_that_cannot_be_drawn_fails_the_run_with_its_error(store: str, iris) -> None:
    client = mlflow.MlflowClient(store)
    tracker, net, result = _trained(store, iris, "broken")
    tail = _tail(tracker, net, iris, result)
    tail.figures = {"epoch": [(1, 1.0)], "train/loss": [("not a step",)]}
    tracker.hand_off()
    error = finish_tail(tail)
    run = client.get_run(tracker.run_id)
    assert error and run.info.status == "FAILED"
    assert run.data.tags[ERROR_TAG] == error
    assert "mlpx.model_uri" not in run.data.tags  # as in the job: no model after a failure


def test_hand_off_refuses_nothing_a_later_finish_needs(store: str, iris) -> None:
    """hand_off stores every value first; the run then belongs to whoever ends it, and the
    tracker's own finish() (the exit hook's too) leaves it alone."""
    client = mlflow.MlflowClient(store)
    tracker, _, _ = _trained(store, iris, "handed")
    tracker.log_metrics({"late": 1.5}, step=99)
    tracker.hand_off()
    assert client.get_run(tracker.run_id).data.metrics["late"] == 1.5
    tracker.finish("FAILED", error="must not be recorded")
    run = client.get_run(tracker.run_id)
    assert run.info.status == "RUNNING" and ERROR_TAG not in run.data.tags
    client.set_terminated(tracker.run_id, "FINISHED")


def test_the_worker_is_started_only_for_jobs_run_in_the_launching_process() -> None:
    from omegaconf import OmegaConf

    from mlpx.app.sweep import _wants_worker

    def config(launcher: str, **sweep) -> tuple:
        cfg = OmegaConf.create(
            {"hydra": {"launcher": {"_target_": launcher}}, "sweep": sweep, "logger": {}}
        )
        return cfg, cfg.logger

    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert _wants_worker(*config(basic))
    assert not _wants_worker(*config(basic, artifact_worker=False))
    assert not _wants_worker(*config(joblib))
    cfg, lg = config(basic)
    lg.log_figures, lg.log_model = False, False
    assert not _wants_worker(cfg, lg)


def _children(uri: str) -> dict[str, dict]:
    """The sweep's child runs by job overrides: status, artifact files, tags, params,
    metric keys and logged models."""
    from tests.cli_helpers import client, runs_of

    c, out = client(uri), {}
    for run in runs_of(uri):
        if "mlflow.parentRunId" not in run.data.tags:
            continue

        def files(path: str = "", run_id: str = run.info.run_id) -> list[str]:
            found = []
            for f in c.list_artifacts(run_id, path):
                found += files(f.path, run_id) if f.is_dir else [f.path]
            return found

        out[run.data.params["optimizer.lr"]] = {
            "status": run.info.status,
            "files": sorted(f for f in files() if not f.startswith("model")),
            "tags": sorted(
                k for k in run.data.tags if not k.startswith(("mlflow.", "mlpx.resumed"))
            ),
            "params": run.data.params,
            "metrics": sorted(run.data.metrics),
            "models": len(run.outputs.model_outputs),
        }
    return out


@pytest.mark.slow
def test_a_sweep_records_the_same_with_and_without_the_helper(tmp_path, store_template) -> None:
    """Issue 14: "a run's store content is the same whichever way it was made fast"."""
    import shutil

    from tests.cli_helpers import run_mlpx

    sweeps = {}
    for worker in ("true", "false"):
        folder = tmp_path / worker
        folder.mkdir()
        shutil.copyfile(store_template, folder / "mlflow.db")  # an empty store, made before
        uri = f"sqlite:///{folder}/mlflow.db"
        proc = run_mlpx(
            folder,
            "-m",
            "dataset=iris",
            "trainer.epochs=3",
            "optimizer.lr=0.01,0.02",
            f"sweep.artifact_worker={worker}",
            f"logger.tracking_uri={uri}",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "sweep summary: 2 runs: 2 finished, 0 failed" in proc.stderr
        sweeps[worker] = _children(uri)
    helped, alone = sweeps["true"], sweeps["false"]
    assert sorted(helped) == sorted(alone) == ["0.01", "0.02"]
    for lr in helped:
        a, b = helped[lr], alone[lr]
        assert a["status"] == b["status"] == "FINISHED"
        assert a["models"] == b["models"] == 1
        assert "figures/learning_curves.png" in a["files"]
        for key in ("files", "tags", "metrics"):
            assert a[key] == b[key], key
        for key in ("sweep.artifact_worker", "logger.tracking_uri"):  # what the two differ in
            assert a["params"].pop(key) != b["params"].pop(key)
        assert a["params"] == b["params"]


@pytest.mark.slow
@pytest.mark.usefixtures("sqlite_store")  # an empty store made before (not the point here)
def test_identical_sweeps_in_opposite_orders_neither_wait_for_each_other(tmp_path) -> None:
    """A job's config claim is held until the helper has ended its run (an identical job
    waiting for it must find it FINISHED), and released while this sweep waits for another
    claim: two sweeps over the same configs in opposite orders both finish, each config
    trained once."""
    import subprocess
    import sys

    from tests.cli_helpers import mlpx_env, runs_of

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", f"logger.tracking_uri={uri}", "dataset=iris", "trainer.epochs=2"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mlpx", *args, f"trainer.seed={seeds}", f"hydra.sweep.dir=s{i}"],
            cwd=tmp_path,
            env=mlpx_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, seeds in enumerate(("0,1,2", "2,1,0"))
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    trained = [r for r in runs_of(uri) if "epoch" in r.data.metrics]
    seeds = sorted(r.data.params["trainer.seed"] for r in trained)
    assert seeds == ["0", "1", "2"], "".join(errors)
    assert all(r.info.status == "FINISHED" for r in trained)

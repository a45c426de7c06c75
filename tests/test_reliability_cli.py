"""The command on oversized or bad input: one line, no traceback, nothing left RUNNING
(issue 19, cases 8, 9, 10, 12, 13), each on a real ``mlpx`` process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli_helpers import run_mlpx, runs_of

FAST = ["dataset=iris", "trainer.epochs=2", "analysis=off", "logger.log_figures=false"]

CASES = [
    # (overrides, the error line holds, a FAILED run exists)
    (
        ["model.widths=[10000000]", "dataset=digits"],
        "model.widths=[10000000]: the network",
        False,
    ),
    (
        ["dataset=moons", "dataset.n_samples=2000000000"],
        "dataset.n_samples=2000000000: the data",
        False,
    ),
    (
        ["model.widths=null", "model.depth=20000", "model.width=2"],
        "model.depth=20000 / model.width=2 asks for 20000 hidden layers",
        False,
    ),
    (
        ["analysis.class_visualisation.enabled=true", "analysis.class_visualisation.steps=1e8"],
        "analysis.class_visualisation.steps must be an integer in 1..100000",
        False,
    ),
    (
        ["optimizer.schedule.name=exponential", "optimizer.schedule.gamma=1e300"],
        "optimizer.schedule.gamma=1e+300 > 1 makes the learning rate grow",
        True,
    ),
    (["model.init=normal", "model.init_std=1e200"], "lower model.init_std", True),
    (["dataset=digits", "optimizer.eps=0"], "optimizer.eps=0 divides by zero", True),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "message", "failed_run"), CASES, ids=lambda v: str(v)[:40])
def test_bad_sizes_and_divergence_causes_are_one_line(tmp_path, overrides, message, failed_run):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = time.perf_counter()
    proc = run_mlpx(tmp_path, f"logger.tracking_uri={uri}", *FAST, *overrides, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "lower optimizer.lr" not in errors[0]
    assert time.perf_counter() - started < 90  # checked before anything large is allocated
    runs = runs_of(uri) if (tmp_path / "mlflow.db").exists() else []
    assert [r.info.status for r in runs] == (["FAILED"] if failed_run else [])


OVERLAYS = {
    "nopkg": (
        "optimizer:\n  lr: 0.5\n",
        "nopkg.yaml must start with the line '# @package _global_' (it sets "
        "experiment.optimizer instead of optimizer)",
    ),
    "badyaml": (
        "# @package _global_\noptimizer:\n  lr: [0.1\n  x: : :\n",
        "badyaml.yaml:4:4: not valid YAML",
    ),
    "pytag": (
        "# @package _global_\noptimizer:\n  lr: !!python/object/apply:os.system ['echo PWNED']\n",
        "could not determine a constructor for the tag",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OVERLAYS))
def test_bad_overlays_are_one_line(tmp_path: Path, name: str) -> None:
    text, message = OVERLAYS[name]
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / f"{name}.yaml").write_text(text)
    proc = run_mlpx(tmp_path, "--config-dir", str(tmp_path / "mine"), f"experiment={name}",
                    "logger=none", *FAST[:3], timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("mlpx: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "PWNED" not in proc.stdout + proc.stderr
    assert not any(x.startswith("epoch") for x in proc.stderr.splitlines())  # nothing trained


@pytest.mark.slow
def test_a_bad_value_in_a_sweep_leaves_a_failed_child(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_mlpx(tmp_path, "-m", f"logger.tracking_uri={uri}", *FAST, "optimizer.lr=0.01,-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mlpx: sweep summary: 2 runs: 1 finished, 1 failed" in proc.stderr
    runs = runs_of(uri)
    parent = next(r for r in runs if r.data.tags.get("mlpx.sweep") == "parent")
    children = {r.data.params.get("optimizer.lr"): r for r in runs if r is not parent}
    assert children["0.01"].info.status == "FINISHED"
    bad = children["-1"]
    assert bad.info.status == "FAILED"
    assert bad.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert bad.data.tags["error"] == "optimizer.lr must be a positive finite number, got -1"
    assert parent.data.tags["failed_jobs"] == "1"


@pytest.mark.slow
def test_n_jobs_zero_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = run_mlpx(tmp_path, "-m", "logger=none", *FAST[:3], "hydra/launcher=joblib",
                    "hydra.launcher.n_jobs=0", "optimizer.lr=0.01,0.02")  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "mlpx: error: hydra.launcher.n_jobs must be a non-zero integer (-1: every CPU), got 0"
    )
    assert "Traceback" not in proc.stderr

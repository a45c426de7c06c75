"""mlpx.app.workers: the garbage collector in processes that run a sweep's jobs elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from mlpx.app import cli, workers


def _hydra(mode: RunMode, launcher: str) -> None:
    hydra = OmegaConf.structured(HydraConf)
    hydra.mode = mode
    hydra.launcher = {"_target_": launcher}
    hydra.sweep.dir = hydra.runtime.output_dir = "unused"
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))


@pytest.fixture
def hydra_state():
    yield
    HydraConfig.instance().cfg = None  # as Hydra leaves it between commands


JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize(
    ("mode", "launcher", "expected"),
    [
        (RunMode.MULTIRUN, JOBLIB, True),
        (RunMode.MULTIRUN, "hydra_plugins.hydra_submitit_launcher.SlurmLauncher", True),
        (RunMode.MULTIRUN, BASIC, False),  # the jobs run in mlpx's own process
        (RunMode.RUN, BASIC, False),
    ],
)
def test_launched_elsewhere(hydra_state, mode, launcher, expected):
    _hydra(mode, launcher)
    assert workers.launched_elsewhere() is expected


def test_launched_elsewhere_without_hydra(hydra_state):
    HydraConfig.instance().cfg = None
    assert workers.launched_elsewhere() is False


def _main_calls_after_job(monkeypatch, mode, launcher) -> list[str]:
    calls: list[str] = []
    _hydra(mode, launcher)
    monkeypatch.setattr(cli, "run", lambda cfg: 0.5)
    monkeypatch.setattr(workers, "after_job", lambda: calls.append("after_job"))
    assert cli.main(OmegaConf.create({})) == 0.5  # a config passed in: no composition
    return calls


def test_main_settles_a_joblib_workers_collector(hydra_state, monkeypatch):
    assert _main_calls_after_job(monkeypatch, RunMode.MULTIRUN, JOBLIB) == ["after_job"]


def test_main_leaves_mlpx_own_process_alone(hydra_state, monkeypatch):
    assert _main_calls_after_job(monkeypatch, RunMode.MULTIRUN, BASIC) == []
    monkeypatch.setattr(cli, "_ENTRY_PID", os.getpid())
    assert _main_calls_after_job(monkeypatch, RunMode.MULTIRUN, JOBLIB) == []


AFTER_JOB = textwrap.dedent(
    """
    import atexit, gc, weakref
    from mlpx.app import workers

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    gc.disable()  # only after_job collects here
    before = cycle()
    assert before() is not None
    hooks = atexit._ncallbacks()
    workers.after_job()
    assert before() is None, "the first job's garbage is collected"
    assert gc.get_freeze_count() > 0, "what is left is frozen"
    assert atexit._ncallbacks() == hooks + 1, "and frozen again at exit"
    frozen = gc.get_freeze_count()
    later = cycle()
    workers.after_job()  # once per process
    assert later() is not None and gc.get_freeze_count() == frozen
    gc.collect()
    assert later() is None, "a later job's garbage is still collected"
    print("ok")
    """
)


def test_after_job_collects_once_then_freezes():
    proc = subprocess.run(
        [sys.executable, "-c", AFTER_JOB], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"

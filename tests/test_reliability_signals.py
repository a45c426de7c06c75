"""SIGINT/SIGTERM at every phase of a real ``mlpx`` process (issue 19, case 4).

``MLPX_TEST_PAUSE=<phase>`` (mlpx.app.signals) makes the process sleep at a known phase
and say so on stderr; the test signals it there and checks the exit code (128 + signum),
the one line, and that the MLflow run (if one was created) ended KILLED, never RUNNING.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import mlpx_env, runs_of

# phase -> whether an MLflow run exists by then
PHASES = [
    ("build", False),
    ("tracker", True),
    ("start", True),
    ("figures", True),
    ("analyses", True),
    ("final", True),
    ("finish", True),
]


ARGS = ["dataset=iris", "trainer.epochs=2", "analysis.figures=true"]


def _signal_at(tmp_path: Path, phase: str, sig: int, *extra: str) -> tuple[int, str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # (a signal at tracker or finish waits for the pause to end: 3 s is ample to send it)
    pause = f"{phase}:3" if phase in ("tracker", "finish") else f"{phase}:60"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpx", f"logger.tracking_uri={uri}", *ARGS, *extra],
        cwd=tmp_path,
        env=mlpx_env(MLPX_TEST_PAUSE=pause),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"mlpx: test pause at {phase}"):
            break
    else:
        proc.wait(timeout=60)
        pytest.fail(f"never reached {phase}:\n{''.join(seen)}")
    proc.send_signal(sig)
    rest = proc.stderr.read()
    return proc.wait(timeout=120), "".join(seen) + rest, uri


SIGNALLED = [(p, run, signal.SIGTERM, 143) for p, run in PHASES] + [
    ("figures", True, signal.SIGINT, 130),  # SIGINT takes the same path: two phases suffice
    ("finish", True, signal.SIGINT, 130),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("phase", "has_run", "sig", "code"), SIGNALLED, ids=[f"{p}-{c}" for p, _, _, c in SIGNALLED]
)
def test_a_signal_at_any_phase_ends_the_run_killed(
    tmp_path, store_template, phase, has_run, sig, code
) -> None:
    if phase not in ("build", "tracker"):  # a copy of an empty store: ~2 s less to migrate
        shutil.copyfile(store_template, tmp_path / "mlflow.db")
    rc, err, uri = _signal_at(tmp_path, phase, sig)
    assert rc == code, err
    assert "Traceback" not in err, err
    stopped = [x for x in err.splitlines() if x.startswith("mlpx: stopped by signal")]
    assert len(stopped) == 1, err
    assert f"({signal.Signals(sig).name})" in stopped[0]
    runs = runs_of(uri) if (tmp_path / "mlflow.db").exists() else []
    assert all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
    if not has_run:
        assert runs == []
        return
    (run,) = runs
    if phase == "finish":  # everything was recorded: the run ends whole, then the exit
        assert run.info.status == "FINISHED", err
    else:
        assert run.info.status == "KILLED", err
        assert "stopped by signal" in run.data.tags.get("error", ""), run.data.tags


# ------------------------------------------------------------------ the guard itself (quick)


@pytest.fixture()
def guard():
    from mlpx.app.signals import SignalGuard

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    g = SignalGuard()
    assert g.install()
    yield g
    for s, h in saved.items():
        signal.signal(s, h)


def _kill(sig: int = signal.SIGTERM) -> None:
    import os
    import time

    os.kill(os.getpid(), sig)
    time.sleep(0.01)  # the handler runs at the next bytecode of the main thread


def test_guard_immediate_deferred_and_graceful(guard) -> None:
    from mlpx.app.signals import Killed
    from mlpx.train import StopRequest

    guard.enter("figures")
    with pytest.raises(Killed) as info:
        _kill()
    assert info.value.exit_code == 143 and "during figures" in str(info.value)

    reached_end = False
    with pytest.raises(Killed, match="during tracker"):
        with guard.section("deferred", "tracker"):
            _kill(signal.SIGINT)
            reached_end = True  # the section finished its work first
    assert reached_end and guard.mode == "immediate"

    stop = StopRequest()
    with pytest.raises(Killed, match=r"training \(after its last step\)"):
        with guard.section("graceful", "training", stop):
            _kill()
            assert stop.signum == signal.SIGTERM  # asked to stop, not stopped
    stop = StopRequest()
    with pytest.raises(Killed, match="a second signal"):
        with guard.section("graceful", "training", stop):
            _kill()
            _kill()

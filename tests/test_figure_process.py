"""A single run's figures drawn by a forked child (mlpx.app.figure_process, issue 14): the
same files as drawn in the run's process, and the run's process draws them when the child
cannot."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlpx.app import figure_process
from mlpx.app.offload import draw_figures
from mlpx.tracking.base import close_figure

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

HISTORY = {
    "epoch": [(10, 1.0), (20, 2.0), (30, 3.0)],
    "train/loss": [(10, 1.2), (20, 0.7), (30, 0.4)],
    "val/loss": [(10, 1.3), (20, 0.9), (30, 0.6)],
    "train/accuracy": [(10, 0.5), (20, 0.8), (30, 0.9)],
    "val/accuracy": [(10, 0.45), (20, 0.7), (30, 0.85)],
    "grad_norm/layer_1": [(s, 1.0 / s) for s in range(1, 31)],
    "grad_norm/layer_2": [(s, 2.0 / s) for s in range(1, 31)],
    "grad_norm/global": [(s, 3.0 / s) for s in range(1, 31)],
    "test/accuracy": [(30, 0.9)],  # not a figure's: left out of what is sent
}


class FileTracker:
    """Keeps the bytes of each logged file (the child's folder is removed after collect)
    and the figures logged as figures."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.figures: list[str] = []

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        name = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self.files[name] = Path(path).read_bytes()

    def log_figure(self, figure: Any, name: str) -> None:
        self.figures.append(name)
        close_figure(figure)


def drawn_here(tmp_path: Path) -> dict[str, bytes]:
    """The figures as the run's process saves them (MlflowClient.log_figure: savefig, dpi
    110)."""
    out = {}
    for name, fig in draw_figures(HISTORY):
        path = tmp_path / Path(name).name
        fig.savefig(path, dpi=110)
        close_figure(fig)
        out[name] = path.read_bytes()
    return out


def exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_child_saves_the_same_files_the_run_would(tmp_path: Path) -> None:
    sketch = figure_process.start()
    assert sketch is not None
    sketch.submit(HISTORY)
    tracker = FileTracker()
    sketch.collect(tracker)
    expected = drawn_here(tmp_path)
    assert sorted(tracker.files) == ["figures/grad_norms.png", "figures/learning_curves.png"]
    for name, data in expected.items():
        assert tracker.files[name] == data, name
    assert tracker.figures == []  # nothing drawn in this process
    assert not Path(sketch.folder).exists()
    assert exited(sketch.pid)


def test_a_dead_child_leaves_the_figures_to_the_run(capfd: pytest.CaptureFixture[str]) -> None:
    sketch = figure_process.start()
    assert sketch is not None
    os.kill(sketch.pid, signal.SIGKILL)
    sketch.submit(HISTORY)
    tracker = FileTracker()
    sketch.collect(tracker)
    assert tracker.files == {}
    assert tracker.figures == ["figures/learning_curves.png", "figures/grad_norms.png"]
    err = capfd.readouterr().err
    assert "mlpx: warning: the figure process failed" in err
    assert "drawing the figures here" in err
    assert not Path(sketch.folder).exists()


def test_ctrl_c_is_the_run_s_to_handle(tmp_path: Path) -> None:
    """SIGINT/SIGTERM reach the whole terminal group: the child goes on drawing."""
    sketch = figure_process.start()
    assert sketch is not None
    time.sleep(0.5)  # past the child's first lines, where it sets the signals aside
    os.kill(sketch.pid, signal.SIGINT)
    os.kill(sketch.pid, signal.SIGTERM)
    sketch.submit(HISTORY)
    tracker = FileTracker()
    sketch.collect(tracker)
    assert tracker.files == drawn_here(tmp_path)


def test_no_submit_logs_nothing_and_the_child_goes() -> None:
    sketch = figure_process.start()
    assert sketch is not None
    tracker = FileTracker()
    sketch.collect(tracker)
    assert tracker.files == {} and tracker.figures == []
    assert exited(sketch.pid)
    assert not Path(sketch.folder).exists()


def test_closed_before_history_the_child_exits_and_cleans_up() -> None:
    """The run failed before training: closing the pipe ends the child."""
    sketch = figure_process.start()
    assert sketch is not None
    sketch.close()
    assert exited(sketch.pid)
    assert not Path(sketch.folder).exists()


def test_switched_off_or_with_other_threads_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPX_FIGURE_PROCESS", "0")
    assert figure_process.start() is None
    monkeypatch.delenv("MLPX_FIGURE_PROCESS")
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert figure_process.start() is None  # a fork copies only the calling thread
    finally:
        release.set()
        other.join()

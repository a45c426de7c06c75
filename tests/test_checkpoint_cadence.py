"""Issue 14: periodic checkpoints at most every ``trainer.checkpoint_min_seconds`` of wall
time (and every ``trainer.checkpoint_every`` epochs); 0 keeps the epoch cadence exactly.
The clock is a fake one advanced per epoch, so nothing sleeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpx.app.config import ConfigError, trainer_settings
from mlpx.app.sweep import config_hash
from mlpx.checkpoint import Checkpointer, load_checkpoint
from mlpx.data import load_dataset
from mlpx.nn.model import MLP
from mlpx.nn.optim import make_optimizer
from mlpx.train import EarlyStopping, TrainerSettings, fit

CFG = TrainerSettings(
    epochs=10, batch_size=64, early_stopping=EarlyStopping(patience=0), progress="false"
)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", seed=0)


def written_epochs(
    iris, folder: Path, every: int, min_seconds: float, per_epoch: float, before: float = 0.0
) -> list[int]:
    """Train 10 epochs, ``per_epoch`` fake seconds each (``before`` seconds pass between the
    checkpointer's creation and training); the epochs of the checkpoints written."""
    clock = FakeClock()
    ckpt = Checkpointer(folder, every, keep=100, min_seconds=min_seconds, clock=clock)
    clock.now += before

    def tick(epoch: int, metrics: dict[str, float]) -> bool:
        clock.now += per_epoch
        return False

    net = MLP([iris.n_features, 8, iris.n_classes], "relu", seed=0)
    fit(net, make_optimizer("adam"), iris, CFG, checkpointer=ckpt, on_eval=tick)
    return sorted(load_checkpoint(p).state.epoch for p in folder.glob("step_*.npz"))


@pytest.mark.parametrize(
    ("every", "min_seconds", "per_epoch", "expected"),
    [
        (1, 10.0, 3.0, [4, 8, 10]),  # time decides: 12 s after the start, then 12 s later
        (3, 1.0, 5.0, [3, 6, 9, 10]),  # epochs decide
        (2, 10.0, 4.0, [3, 6, 9, 10]),  # both: 2 epochs and 10 s -> every 3rd epoch
        (1, 10.0, 0.1, [10]),  # a fast run: only the checkpoint at the end
        (2, 0.0, 100.0, [2, 4, 6, 8, 10]),  # 0: the epoch cadence, however slow
        (0, 10.0, 100.0, [10]),  # every=0: only at the end, whatever the time
    ],
)
def test_periodic_checkpoints_wait_for_epochs_and_seconds(
    iris, tmp_path: Path, every: int, min_seconds: float, per_epoch: float, expected: list[int]
) -> None:
    assert written_epochs(iris, tmp_path, every, min_seconds, per_epoch) == expected


def test_the_seconds_count_from_the_start_of_training(iris, tmp_path: Path) -> None:
    """Time spent before training (data, sanity checks) does not make a checkpoint due."""
    assert written_epochs(iris, tmp_path, 1, 10.0, 3.0, before=500.0) == [4, 8, 10]


def test_a_resumed_run_counts_from_its_checkpoint(tmp_path: Path) -> None:
    clock = FakeClock()
    timed = Checkpointer(tmp_path, every=3, keep=1, min_seconds=5.0, clock=clock)
    timed.start(4)  # resumed after epoch 4
    clock.now += 60.0
    assert [e for e in range(5, 11) if timed.due(e)] == [7, 8, 9, 10]  # none saved here
    exact = Checkpointer(tmp_path, every=3, keep=1, min_seconds=0.0, clock=clock)
    exact.start(4)
    assert [e for e in range(5, 11) if exact.due(e)] == [6, 9]  # multiples, as before


def test_the_key_is_checked_defaulted_and_left_out_of_the_config_hash() -> None:
    assert trainer_settings({}).checkpoint_min_seconds == 10.0
    assert trainer_settings({"checkpoint_min_seconds": 0}).checkpoint_min_seconds == 0
    with pytest.raises(ConfigError, match=r"trainer\.checkpoint_min_seconds must be a non-neg"):
        trainer_settings({"checkpoint_min_seconds": -1})
    base = {"trainer": {"epochs": 3, "checkpoint_min_seconds": 10.0}}
    other = {"trainer": {"epochs": 3, "checkpoint_min_seconds": 0.0}}
    assert config_hash(base) == config_hash(other)  # the same training
    assert config_hash(base) != config_hash({"trainer": {**base["trainer"], "epochs": 4}})

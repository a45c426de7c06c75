"""benchmarks/sweep_cost.py's arguments: the scikit-learn peer of a joblib comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import load_script

SWEEP_COST = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_cost.py"


def load() -> Any:
    return load_script(SWEEP_COST)


def test_peer_arg_splits_widths_from_epochs() -> None:
    peer_arg = load().peer_arg
    assert peer_arg("512,256,15") == ("512,256", "15")
    assert peer_arg("128,450") == ("128", "450")


@pytest.mark.parametrize("bad", ["128", "128,", "128,x", ""])
def test_peer_arg_refuses_a_peer_without_widths_and_epochs(bad: str) -> None:
    with pytest.raises(SystemExit, match="WIDTHS,EPOCHS"):
        load().peer_arg(bad)


def test_joblib_bound_divides_all_but_the_launcher_by_the_ceiling() -> None:
    phases = {
        "sweep: start (MLflow import, parent run)": 2.0,
        "imports (mlpx.app.cli)": 0.5,
        "sweep: summary": 0.5,
        "training": 14.0,
        "total in process": 20.0,
    }
    bound = load().joblib_bound
    assert bound(phases, 2.0) == pytest.approx(20.0 / (3.0 + 17.0 / 2.0))
    assert bound(phases, 1.0) == pytest.approx(1.0)
    everything_parallel = {"training": 10.0, "total in process": 10.0}
    assert bound(everything_parallel, 1.7) == pytest.approx(1.7)

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

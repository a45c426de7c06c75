"""benchmarks/sweep_cost.py's arguments: the scikit-learn peer of a joblib comparison."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SWEEP_COST = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_cost.py"


def load() -> object:
    spec = importlib.util.spec_from_file_location("sweep_cost", SWEEP_COST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_arg_splits_widths_from_epochs() -> None:
    peer_arg = load().peer_arg
    assert peer_arg("512,256,15") == ("512,256", "15")
    assert peer_arg("128,450") == ("128", "450")


@pytest.mark.parametrize("bad", ["128", "128,", "128,x", ""])
def test_peer_arg_refuses_a_peer_without_widths_and_epochs(bad: str) -> None:
    with pytest.raises(SystemExit, match="WIDTHS,EPOCHS"):
        load().peer_arg(bad)

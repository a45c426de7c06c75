"""The end-of-run line about gradient oracles says only what was measured."""

from __future__ import annotations

import importlib.util

from tests.conftest import Worst, summary_line


def test_nothing_measured_prints_nothing() -> None:
    assert summary_line(Worst()) is None


def test_both_oracles_measured() -> None:
    worst = Worst()
    worst["finite_differences"] = max(worst["finite_differences"], 3e-9)
    worst["autograd"] = max(worst["autograd"], 0.0)  # a measured zero is a figure
    assert summary_line(worst) == (
        "mlpx gradients: worst relative error vs finite differences 3.00e-09; "
        "worst max abs difference vs PyTorch autograd 0.00e+00"
    )


def test_a_skipped_oracle_prints_no_figure_and_says_so(monkeypatch) -> None:
    worst = Worst()
    worst["finite_differences"] = max(worst["finite_differences"], 3e-9)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    line = summary_line(worst)
    assert line == (
        "mlpx gradients: worst relative error vs finite differences 3.00e-09; "
        "PyTorch autograd skipped (torch is not installed)"
    )
    assert "autograd" not in worst  # reading a missing oracle records nothing

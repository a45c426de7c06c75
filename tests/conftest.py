"""Shared test settings: the worst gradient errors met, printed in the summary."""

from __future__ import annotations

# Filled by tests/test_model.py: the largest error measured against each reference.
WORST: dict[str, float] = {"finite_differences": 0.0, "autograd": 0.0}


def pytest_terminal_summary(terminalreporter) -> None:
    if any(WORST.values()):
        terminalreporter.write_line(
            "mlpx gradients: worst relative error vs finite differences "
            f"{WORST['finite_differences']:.2e}; worst max abs difference vs PyTorch "
            f"autograd {WORST['autograd']:.2e}"
        )

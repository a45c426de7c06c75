"""benchmarks/parallel_ceiling.py: its race of prepared children and the ceiling it reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import load_script

CEILING = Path(__file__).resolve().parents[1] / "benchmarks" / "parallel_ceiling.py"


def load() -> Any:
    return load_script(CEILING)


def test_a_pair_times_every_side_of_a_short_loop() -> None:
    times = load().pair("python loop", 1000)
    assert set(times) == {
        "one after the other",
        "one after the other, BLAS on 1 thread",
        "two at once",
    }
    assert all(0.0 < t < 30.0 for t in times.values())


def test_the_ceiling_is_serial_over_parallel_medians() -> None:
    got = load().summary({"one after the other": [4.0, 3.0, 5.0], "two at once": [2.0, 2.5, 1.0]})
    assert got["median_s"] == {"one after the other": 4.0, "two at once": 2.0}
    assert got["ceiling"] == pytest.approx(2.0)


def test_a_child_that_fails_before_its_work_stops_the_benchmark() -> None:
    with pytest.raises(SystemExit, match="failed before its work"):
        load().start("no such kind", 1, 10, 1)

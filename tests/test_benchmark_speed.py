"""The speed benchmark (benchmarks/speed.py) starts and writes every section of its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEED = ROOT / "benchmarks" / "speed.py"


# --------------------------------------------------------------------------- benchmark


def run_speed(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "speed.json"
    md = tmp_path / "speed.md"
    proc = subprocess.run(
        [sys.executable, str(SPEED), "--quick", "--out", str(out), "--md", str(md), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| target (issue 7) |" in md.read_text()
    return json.loads(out.read_text())


def test_speed_benchmark_starts_and_reports(tmp_path: Path) -> None:
    """A few seconds: digits with mlpx alone, no MLflow, no start-up timing."""
    report = run_speed(
        tmp_path, "--problems", "b", "--peers", "mlpx", "--no-tracking", "--no-startup"
    )
    for key in ("command", "machine", "load_before", "load_after", "config", "results"):
        assert key in report, key
    row = report["results"]["b"]["float64"]["mlpx"]
    for key in ("seconds_per_epoch", "seconds_total", "samples_per_second", "gflops"):
        assert row[key] > 0, key
    assert report["memory"]["b"]["float64"]["mlpx"]["peak_rss_bytes"] > 0
    assert isinstance(report["targets"], list)


@pytest.mark.slow
def test_speed_benchmark_quick_run_has_every_section(tmp_path: Path) -> None:
    report = run_speed(tmp_path)
    peers = report["config"]["peers"]
    assert "mlpx" in peers and "sklearn" in peers
    for dtype in ("float32", "float64"):
        tools = report["results"]["a"][dtype]
        assert set(peers) <= set(tools)
        assert tools["mlpx"]["fraction_of_layer_ceiling"] > 0
        assert report["gemm"][dtype]["layer_gflops"] > 0
    assert set(peers) <= set(report["results"]["b"]["float64"])
    assert "sklearn" in report["results"]["b"]["float64"]
    assert report["results"]["b"]["float64"]["sklearn"]["mlpx_ratio"] > 0
    if "tracking" not in report["skipped"]:
        assert report["tracking"]["every_1"]["every"] == 1
    assert report["startup"]["seconds"] > 0
    names = [row["target"] for row in report["targets"]]
    assert any("mlpx --help" in name for name in names)
    assert any("(b) float64: mlpx time / sklearn" in name for name in names)

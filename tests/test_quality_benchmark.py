"""Smoke test of benchmarks/quality.py: the four ablations train, evaluate and land in one table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quality_benchmark_smoke(tmp_path):
    out = tmp_path / "quality.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/quality.py", "--smoke", "--workdir", str(tmp_path / "runs"), "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| generated shapes")]
    assert [r.split("|")[2].strip() for r in rows] == ["plain U-Net", "+MHSA", "+MHCA", "MHSA+MHCA"]
    params = [int(r.split("|")[3].strip().replace(",", "")) for r in rows]
    assert params[0] < min(params[1:]) and params[3] == max(params)  # attention adds parameters
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "8"  # the 8 held-out test images
        assert all(0.0 <= float(v) <= 1.0 for v in cells[4:8])
    assert len(list((tmp_path / "runs").glob("*/smoke/*/eval/metrics.json"))) == 4

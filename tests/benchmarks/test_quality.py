"""benchmarks/quality.py: models × seeds train, evaluate and land in one table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT


@pytest.mark.slow
def test_quality_benchmark_smoke(tmp_path):
    out = tmp_path / "quality.md"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/quality.py",
            "--smoke",
            "--seeds",
            "0",
            "1",
            "--models",
            "reference",
            "plain",
            "full",
            "--common",
            "data.batch_size=3",
            "--tta",
            "--workdir",
            str(tmp_path / "runs"),
            "--output",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.read_text().splitlines()
        if line.startswith("| generated shapes")
    ]
    assert [r[1] for r in rows] == ["minimal reference recipe (plain)", "segattn plain U-Net", "segattn MHSA+MHCA"]
    assert all(r[2] == "2" for r in rows)  # two seeds each
    params = [int(r[3].replace(",", "")) for r in rows]
    assert params[0] == params[1] < params[2]  # attention adds parameters
    for row in rows:
        mean, std = (float(v) for v in row[4].split(" ± "))
        assert 0.0 <= mean <= 1.0 and std >= 0.0
    for row in rows:  # per-image Dice with test-time flips, beside the single pass
        assert 0.0 <= float(row[8].split(" ± ")[0]) <= 1.0
    assert rows[0][10] == "–" and len(rows[2][10].split(" / ")) == 2  # gate contrast of the 2 MHCA levels (depth 2)
    assert rows[0][11] == "–" and float(rows[2][11]) > 0  # MHSA border ratio of the full model only
    assert "/2 < 0.9)" in rows[2][12]  # 2 MHSA heads
    assert all(row[14] == "1 / 1" for row in rows)  # epochs trained by each seed
    metrics = sorted((tmp_path / "runs").glob("*/smoke/*/seed*/eval-test-best/metrics.json"))
    assert (
        len(metrics) == 6
        and len(list((tmp_path / "runs").glob("*/smoke/*/seed*/eval-test-best-tta/metrics.json"))) == 6
    )
    full = json.loads(next(m for m in metrics if "/full/" in str(m)).read_text())
    assert set(full["attention"]) >= {"gate_contrast", "mhsa_head_entropy", "mhca_entropy", "mhsa_border_ratio"}
    # the reference recipe's settings reached its run
    config = (tmp_path / "runs").glob("*/smoke/reference/seed0/config.yaml")
    text = next(config).read_text()
    assert "decay_norm_and_bias: true" in text and "vertical_flip: false" in text and "cross_attention: false" in text
    assert "rotate90: false" in text and "ema" not in text
    assert "batch_size: 3" in text  # --common reaches every row, the reference included

"""The benchmark scripts (benchmarks/*.py): each runs at its smallest size and prints a full table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT


def table_rows(stdout: str) -> list[list[str]]:
    """Cells of the Markdown table's rows (header first, the alignment row dropped)."""
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if not line.startswith("|:--")]


def run(script: str, *args: str, tmp_path: Path) -> tuple[list[list[str]], str]:
    out = tmp_path / "report.md"
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke", "--output", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text().strip() == proc.stdout.strip()  # --output writes what was printed
    return table_rows(proc.stdout), proc.stdout


@pytest.mark.slow
def test_attention_benchmark_smoke(tmp_path):
    rows, text = run("attention.py", "--channels", "64", "--coarse-channels", "128", "--no-qk-norm", tmp_path=tmp_path)
    assert "Machine:" in text and "qk_norm off" in text
    header, body = rows[0], rows[1:]
    assert header == [
        "module",
        "tokens N (grid)",
        "fast path kernel",
        "fast s",
        "textbook s",
        "time fast/textbook",
        "fast MiB",
        "textbook MiB",
        "memory fast/textbook",
    ]
    assert [(r[0], r[1]) for r in body] == [("MHSA", "256 (16×16)"), ("MHCA", "256 (16×16)")]
    for r in body:
        assert len(r) == len(header)
        assert r[2] in ("fused", "math fallback", "unknown")
        assert float(r[3]) > 0 and float(r[4]) > 0 and float(r[5]) > 0
        assert float(r[6].replace(",", "")) >= 0 and float(r[7].replace(",", "")) >= 0


@pytest.mark.slow
def test_model_benchmark_smoke(tmp_path):
    rows, text = run("model.py", "--base-channels", "8", tmp_path=tmp_path)
    header, body = rows[0], rows[1:]
    assert header == [
        "size",
        "model",
        "batch",
        "img/s",
        "step s",
        "time × plain",
        "peak MiB",
        "memory × plain",
        "MiB/MP",
        "params M",
    ]
    assert [r[1] for r in body] == ["plain U-Net", "+MHSA", "+MHCA", "MHSA+MHCA"]
    for r in body:
        assert len(r) == len(header) and r[0] == "32 px" and r[2] == "1"
        assert float(r[3]) > 0 and float(r[5]) > 0
    assert body[0][5] == "1.00" and body[0][7] == "1.00"  # ratios are against the plain U-Net
    assert float(body[3][9]) > float(body[0][9])  # attention adds parameters


@pytest.mark.slow
def test_model_benchmark_times_cases_in_their_own_processes(tmp_path):
    rows, text = run(
        "model.py",
        "--base-channels",
        "8",
        "--variants",
        "MHSA+MHCA",
        "--isolate",
        "2",
        "--no-memory",
        tmp_path=tmp_path,
    )
    assert "each case timed in its own process (2 rounds" in text
    body = rows[1:]
    assert [r[1] for r in body] == ["plain U-Net", "MHSA+MHCA"]
    assert float(body[0][4]) > 0 and float(body[1][4]) > 0 and body[0][5] == "1.00"
    assert float(body[1][9]) > float(body[0][9])  # parameters counted without running the cases here


@pytest.mark.slow
def test_pipeline_benchmark_smoke(tmp_path):
    out = tmp_path / "pipeline.md"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/pipeline.py",
            "--experiment",
            "smoke",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--variants",
            "plain U-Net",
            "MHSA+MHCA",
            "--workdir",
            str(tmp_path / "runs"),
            "--output",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table_rows(out.read_text())
    assert rows[0] == [
        "model",
        "timed epochs",
        "images",
        "seconds",
        "train / validation / after s",
        "end-to-end img/s",
        "model-only img/s",
        "end-to-end / model",
    ]
    assert [r[0] for r in rows[1:]] == ["plain U-Net", "MHSA+MHCA"]
    for r in rows[1:]:
        assert r[1] == "1" and r[2] == "16"  # one timed epoch of the 16 generated training images
        phases = [float(v) for v in r[4].split(" / ")]
        assert len(phases) == 3 and all(v >= 0 for v in phases) and phases[0] > 0
        assert (
            abs(sum(phases) - float(r[3])) <= 0.21
        )  # the phases split the timed seconds (four numbers rounded to 0.1)
        assert float(r[5]) > 0 and float(r[6]) > 0 and r[7].endswith("%")


@pytest.mark.slow
def test_startup_benchmark_times_each_stage_in_order(tmp_path):
    out = tmp_path / "startup.md"
    proc = subprocess.run(
        [sys.executable, "benchmarks/startup.py", "--repeats", "1", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table_rows(out.read_text())
    assert rows[0] == ["stage", "seconds"]
    stages = {r[0]: float(r[1]) for r in rows[1:]}
    assert list(stages)[-3:] == [
        "train.py experiment=smoke: configured",
        "train.py experiment=smoke: fit set up",
        "train.py experiment=smoke: first step",
    ]
    times = list(stages.values())[-3:]
    assert 0 < times[0] <= times[1] <= times[2]
    assert stages["`python -c 'import torch'`"] > 0


def test_large_image_memory_case_runs_in_a_child(tmp_path):
    """The memory case of benchmarks/large_images.py on a small image: a peak and the map's shape."""
    import json

    case = {"size": [100, 130], "window": 32, "batch_size": 2, "base_channels": 8, "qk_norm": False}
    proc = subprocess.run(
        [sys.executable, "benchmarks/large_images.py", "--memory-case", json.dumps(case)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1, 2, 100, 130] and result["peak"] >= 0


def test_model_benchmark_settings_are_parsed_as_yaml_and_fixed_keys_refused():
    from benchmarks.model import parse_args

    args = parse_args(
        ["--smoke", "--model", "gate_channels=one", "--also", "cross_attention_levels=[1,2,3]", "gate_init=0.9"]
    )
    assert args.model == {"gate_channels": "one"}
    assert args.also == {"cross_attention_levels": [1, 2, 3], "gate_init": 0.9}
    for bad in (["--model", "base_channels=8"], ["--also", "self_attention=false"], ["--model", "gate_channels"]):
        with pytest.raises(SystemExit):
            parse_args(["--smoke", *bad])


@pytest.mark.slow
def test_attention_parts_benchmark_smoke(tmp_path):
    rows, text = run("attention_parts.py", tmp_path=tmp_path)
    header, body = rows[0], rows[1:]
    assert header == ["part", "queries (grid)", "keys", "heads", "ms", "% of plain step"]
    assert body[0][0].startswith("plain U-Net step") and body[0][5] == "100.0"
    # 32 px, depth 4: the bottleneck is 2×2; the decoder meets the skips from the coarsest up.
    parts = {r[0].split(" (")[0]: r for r in body[1:-1]}
    assert list(parts) == ["MHSA", "MHCA level 3", "MHCA level 2", "MHCA level 1", "MHCA level 0"]
    assert parts["MHSA"][1] == "4 (2×2)" and parts["MHCA level 0"][1] == "256 (16×16)"
    assert all(float(r[4]) > 0 for r in body)
    assert body[-1][0] == "all attention parts"
    assert float(body[-1][4]) == pytest.approx(sum(float(r[4]) for r in parts.values()), abs=0.3)


@pytest.mark.slow
def test_figures_benchmark_smoke(tmp_path):
    rows, text = run("figures.py", tmp_path=tmp_path)
    header, body = rows[0], rows[1:]
    assert header == ["model", "figures", "count", "build s", "render and encode s", "drawing s"]
    # 3 fixed images and 2 worst: 5 prediction figures; MHSA and gate figures for the fixed 3, full model only.
    assert [(r[0], r[1], r[2]) for r in body] == [
        ("plain U-Net", "predictions", "5"),
        ("plain U-Net", "whole drawing", ""),
        ("MHSA+MHCA", "predictions", "5"),
        ("MHSA+MHCA", "MHSA", "3"),
        ("MHSA+MHCA", "gates", "3"),
        ("MHSA+MHCA", "whole drawing", ""),
    ]
    for r in body:
        parts = [float(r[3]), float(r[4])] if r[3] else []
        assert all(v > 0 for v in parts) and (not r[5] or float(r[5]) > 0)

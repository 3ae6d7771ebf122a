"""benchmarks/encoders.py: recorded runs are reused, validated and summed up over invocations."""

from __future__ import annotations

import json

import pytest

from benchmarks.encoders import is_recorded, load_results, quality_table, recorded_encoders, rows_for


def run(label: str, encoder: str, seed: int, dice: float, epochs: int = 20) -> dict:
    metrics = {"test/dice": dice, "test/iou": dice / (2 - dice), "test/dice_per_image": dice - 0.01}
    return {
        "label": label,
        "encoder": encoder,
        "seed": seed,
        "epochs": epochs,
        "metrics": metrics,
        "seconds": 100.0 + 2 * seed,
        "params": 1000,
    }


def test_missing_results_file_means_no_runs(tmp_path):
    assert load_results(tmp_path / "results.json") == []


def test_bad_results_file_names_the_file_and_what_was_expected(tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text("[{")
    with pytest.raises(SystemExit, match=r"results\.json: not valid JSON"):
        load_results(broken)
    broken.write_text(json.dumps([{"label": "smp Unet, resnet18", "seed": 0}]))
    with pytest.raises(
        SystemExit, match=r"results\.json: expected a JSON list of runs, each with the keys label, encoder"
    ):
        load_results(broken)


def test_a_run_is_recorded_by_network_seed_and_epochs():
    row = rows_for(["resnet18"])[1]
    results = [run(row["label"], "resnet18", 0, 0.8)]
    assert is_recorded(results, row, 0, 20)
    assert not is_recorded(results, row, 1, 20)
    assert not is_recorded(results, row, 0, 40)
    assert not is_recorded(results, rows_for(["resnet34"])[1], 0, 20)


def test_table_covers_every_recorded_encoder_with_mean_over_seeds():
    results = [
        run("segattn MHSA+MHCA, double-conv encoder (base 16)", "unet", 0, 0.84),
        run("smp Unet, resnet18", "resnet18", 0, 0.80),
        run("smp Unet, resnet18", "resnet18", 1, 0.82),
        run("smp Unet, resnet18", "resnet18", 2, 0.81, epochs=40),  # another budget: left out
        run("smp Unet, resnet34", "resnet34", 0, 0.83),
    ]
    encoders = recorded_encoders(results, ["resnet34"])
    assert encoders == ["resnet34", "resnet18"]
    lines = quality_table(results, rows_for(encoders), epochs=20).splitlines()
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    assert list(cells) == [
        "segattn MHSA+MHCA, double-conv encoder (base 16)",
        "smp Unet, resnet34",
        "smp Unet, resnet18",
    ]
    assert cells["smp Unet, resnet18"][1] == "2"  # seeds
    assert cells["smp Unet, resnet18"][3] == "0.8100 ± 0.0141"  # test Dice, mean ± sample std
    assert cells["smp Unet, resnet18"][6] == "101"  # train s: mean of 100 and 102
    assert cells["smp Unet, resnet34"][3] == "0.8300"  # one seed: no spread

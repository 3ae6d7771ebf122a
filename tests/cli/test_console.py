"""What a train.py run shows (segattn.cli.console): a quiet console, train.log, HParams and the tag layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("console") / "run"
    # No PYTHONWARNINGS=ignore and no NO_ALBUMENTATIONS_UPDATE: the console must be quiet by itself.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "NO_ALBUMENTATIONS_UPDATE")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "experiment=smoke",
            f"hydra.run.dir={run_dir}",
            "trainer.enable_progress_bar=false",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return run_dir, proc.stdout + proc.stderr


def test_console_is_quiet_and_ends_with_what_to_do_next(smoke):
    run_dir, console = smoke
    for noise in ("albumentations", "litlogger", "LeafSpec", "FLOPs", "Total Flops", "Warning", "deprecated"):
        assert noise.lower() not in console.lower(), noise
    tail = console[console.index("Finished after 2 epochs") :]
    assert "best val/dice" in tail and "at epoch" in tail
    assert f"{run_dir / 'checkpoints' / 'best.ckpt'}" in tail and f"{run_dir / 'checkpoints' / 'last.ckpt'}" in tail
    assert f"--logdir {run_dir / 'tensorboard'}" in tail
    assert f"evaluate.py ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}" in tail


def test_train_log_holds_the_whole_console_log(smoke):
    run_dir, _ = smoke
    text = (run_dir / "train.log").read_text()
    for line in (
        "Seed set to 0",
        "GPU available",
        "Total params",
        "Epoch 0: train/loss",
        "Epoch 1: train/loss",
        "`Trainer.fit` stopped",
        "best val/dice",
        "evaluate.py ckpt_path=",
    ):
        assert line in text, line
    assert "litlogger" not in text


def test_hparams_plugin_data_has_the_curated_settings_and_best_metrics(smoke):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, _ = smoke
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    # no experiment summary: TensorBoard builds the table from all runs and lists differing settings first
    assert "_hparams_/experiment" not in content
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = dict(session.hparams)
    for key in (
        "self_attention",
        "cross_attention",
        "heads",
        "base_channels",
        "image_size",
        "loss",
        "lr",
        "scheduler",
        "augment",
        "seed",
        "max_epochs",
        "data",
    ):
        assert key in hparams, key
    assert hparams["self_attention"].string_value == "true" and hparams["loss"].string_value == "ce+dice"
    assert hparams["heads"].string_value == "2" and hparams["seed"].string_value == "0"  # integers as integers
    assert hparams["data"].string_value == "synthetic" and hparams["cross_attention_levels"].string_value == "all"
    assert {"val/best_dice", "val/best_iou"} <= set(acc.Tags()["scalars"])
    best = [e.value for e in acc.Scalars("val/best_dice")]
    dice = [e.value for e in acc.Scalars("val/dice")]
    assert best == pytest.approx([max(dice[: i + 1]) for i in range(len(dice))])
    assert [e.step for e in acc.Scalars("val/best_dice")] == [e.step for e in acc.Scalars("val/dice")]


def test_curves_come_before_figures_and_share_their_steps(smoke):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = smoke
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    groups = sorted({t.split("/")[0] for t in tags["scalars"] + tags["images"]})
    assert groups == ["train", "val", "val_attention", "val_images"]  # sorted as TensorBoard sorts: curves first
    assert "epoch" not in tags["scalars"] and {"train/lr/weights", "train/lr/norms_and_biases"} <= set(tags["scalars"])
    kinds = sorted({t.split("/")[1] for t in tags["images"]})
    assert kinds == ["1_predictions", "2_worst", "3_mhsa", "4_gates"]  # predictions first in the Images tab
    assert {
        "train/loss",
        "train/loss_step",
        "val_attention/mhsa_entropy_head0",
        "val_attention/gate_contrast_level0",
        "val_attention/mhsa_border_ratio",
    } <= set(tags["scalars"])
    layout = acc.PluginTagToContent("custom_scalars")
    assert layout  # the charts that draw the head entropies and gate contrasts together
    val_steps = [e.step for e in acc.Scalars("val/dice")]
    gates = next(t for t in tags["images"] if t.startswith("val_images/4_gates/"))
    assert [e.step for e in acc.Images(gates)] == val_steps
    for tag in tags["images"]:  # every figure fits a card: 800 px wide at most, not much taller than wide
        image = acc.Images(tag)[-1]
        assert image.width <= 820 and image.height <= 1.5 * image.width, (tag, image.width, image.height)

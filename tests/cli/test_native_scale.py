"""train.py on patches and evaluate.py at native resolution, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers.paths import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_folder_of_large_tiles_trains_on_patches_and_evaluates_by_sliding_window(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        for i in range(count):
            mask = np.zeros((70, 90), dtype=np.uint8)
            mask[10 + i : 40 + i, 20:60] = 255
            image = (rng.integers(0, 60, (70, 90, 3)) + (mask[..., None] > 0) * 150).astype(np.uint8)
            for sub, array in (("images", image), ("masks", mask)):
                (tmp_path / "tiles" / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(tmp_path / "tiles" / split / sub / f"t{i}.png")
    run_dir = tmp_path / "run"
    common = [
        "model.depth=2",
        "model.base_channels=8",
        "model.heads=2",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.enable_progress_bar=false",
        "callbacks.attention_images.worst_k=1",
    ]
    proc = run(
        "train.py",
        "data=folder",
        f"data.root={tmp_path / 'tiles'}",
        "data.patch_size=32",
        "inference.mode=sliding_window",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
        *common,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    images = events.Tags()["images"]  # figures of the last epoch, on the central window of native-size tiles
    assert any(t.startswith("val_images/4_gates/") for t in images)
    assert any(t.startswith("val_images/1_predictions/") for t in images)
    refused = run(
        "train.py",
        "data=folder",
        f"data.root={tmp_path / 'tiles'}",
        "data.patch_size=32",
        f"hydra.run.dir={tmp_path / 'r2'}",
        *common,
    )
    assert refused.returncode == 2 and "inference.mode=sliding_window" in refused.stdout + refused.stderr
    results = {}
    for name, extra in (("window", []), ("flips", ["inference.tta=true"]), ("native", ["resolution=native"])):
        out = tmp_path / f"eval-{name}"
        proc = run("evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={out}", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = json.loads((out / "metrics.json").read_text())
    assert results["window"]["inference"]["mode"] == "sliding_window" and results["window"]["inference"]["window"] == 32
    assert results["flips"]["inference"]["tta"] is True
    assert results["native"]["resolution"] == "native"
    # The sliding window already runs at native scale: both resolutions score the same pixels.
    assert results["native"]["dice"]["mean"] == pytest.approx(results["window"]["dice"]["mean"])


@pytest.mark.slow
def test_native_resolution_scores_resized_predictions_on_the_original_masks(tmp_path):
    """A resize-trained model scored at native resolution: predictions upsampled to each
    image's own size and compared with its original mask (checked by hand)."""
    run_dir = tmp_path / "run"
    proc = run(
        "train.py", "experiment=smoke", "data.generated_size=48", f"hydra.run.dir={run_dir}", "trainer.max_epochs=1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "native"
    proc = run(
        "evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={out}", "resolution=native"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resolution"] == "native" and metrics["inference"]["mode"] == "resize"

    from segattn.checkpoint import load_checkpoint
    from segattn.cli.common import datamodule_from_checkpoint
    from segattn.training.module import module_from_checkpoint

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    module = module_from_checkpoint(checkpoint).eval()
    dm = datamodule_from_checkpoint(checkpoint, None, "ckpt")
    dataset = dm.dataset("test")
    tp = fp = fn = 0
    for sample in dataset.samples:
        image, mask = sample.load(dataset.grey, dataset.table)
        assert mask.shape == (48, 48)
        x = torch.from_numpy(dataset.transform(image=image)["image"].transpose(2, 0, 1)).float()[None]
        with torch.no_grad():
            probs = torch.nn.functional.interpolate(
                module(x).softmax(1), size=(48, 48), mode="bilinear", align_corners=False
            )
        pred, truth = probs.argmax(1)[0].numpy(), mask
        tp += ((pred == 1) & (truth == 1)).sum()
        fp += ((pred == 1) & (truth != 1)).sum()
        fn += ((pred != 1) & (truth == 1)).sum()
    assert metrics["dice"]["mean"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)

"""Patch training at native scale and scoring at native resolution."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segattn.data import ISBI2012DataModule
from segattn.data.checks import check_samples
from segattn.data.patches import PAD_LABEL, rescale, sample_patch

ROOT = Path(__file__).resolve().parents[1]


def test_patches_have_the_size_and_oversample_the_foreground():
    mask = np.zeros((200, 300), dtype=np.int64)
    mask[150:160, 250:260] = 1  # a small object far from the centre
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    hits = {0.0: 0, 1.0: 0, 0.5: 0}
    for fraction in hits:
        for _ in range(200):
            img, m = sample_patch(image, mask, 32, fraction, rng, pad_label=PAD_LABEL)
            assert img.shape == (32, 32, 3) and m.shape == (32, 32)
            hits[fraction] += int((m == 1).any())
    assert hits[1.0] == 200  # always centred on a foreground pixel
    assert hits[0.0] < 30  # uniform: the object is rarely in view (~2 % of the area)
    assert 80 < hits[0.5] < 130


def test_small_images_are_padded_with_the_ignore_label_and_crops_match_the_image():
    image = np.arange(10 * 12, dtype=np.uint8).reshape(10, 12)
    mask = (image % 2).astype(np.int64)
    img, m = sample_patch(image, mask, 16, 0.0, np.random.default_rng(0), pad_label=7)
    assert img.shape == (16, 16) and (m == 7).sum() == 16 * 16 - 10 * 12
    assert ((img % 2)[m != 7] == m[m != 7]).all() and (img[m == 7] == 0).all()
    rgb, _ = sample_patch(
        np.zeros((10, 12, 3), dtype=np.uint8),
        mask,
        16,
        0.0,
        np.random.default_rng(0),
        pad_label=7,
        fill=(124, 116, 104),
    )
    assert (rgb[0, 0] == (124, 116, 104)).all() and (rgb[8, 8] == 0).all()  # fill per channel; the image kept
    big = np.arange(40 * 50).reshape(40, 50)
    crop, cmask = sample_patch(big, big % 3, 16, 0.0, np.random.default_rng(3), pad_label=7)
    top, left = np.argwhere(big == crop[0, 0])[0]
    assert (crop == big[top : top + 16, left : left + 16]).all() and (cmask == crop % 3).all()


def test_rescale_keeps_labels_and_halves_the_size():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    mask = np.zeros((40, 60), dtype=np.int64)
    mask[10:30, 20:40] = 2
    small, small_mask = rescale(image, mask, 0.5)
    assert small.shape == (20, 30, 3) and small_mask.shape == (20, 30)
    assert set(np.unique(small_mask)) == {0, 2}
    assert rescale(image, mask, 1.0)[0] is image


def test_patch_mode_data_module(tiny_isbi):
    dm = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, foreground_fraction=1.0)
    dm.setup()
    assert dm.ignore_index == PAD_LABEL  # padding gets ignored
    train = dm.dataset("train")
    a, b, other = train[(0, 1)], train[(0, 1)], train[(1, 1)]
    assert a["image"].shape == (1, 16, 16) and a["mask"].shape == (16, 16)
    assert torch.equal(a["image"], b["image"])  # seeded by (seed, epoch, index)
    assert not torch.equal(a["image"], other["image"])
    assert (a["mask"] == 1).any()  # centred on membrane
    val = dm.dataset("val")[0]
    assert val["image"].shape == (1, 32, 32)  # native size for sliding-window validation
    assert dm.val_dataloader().batch_size == 1
    # Slices smaller than a patch: the padding is the mean grey, 0 once normalised (as the sliding window pads).
    padded = ISBI2012DataModule(root=str(tiny_isbi), patch_size=48, augment="none").dataset("train")[(0, 0)]
    outside = padded["mask"] == PAD_LABEL
    assert outside.sum() == 48 * 48 - 32 * 32 and padded["image"][0][outside].abs().max() < 0.01
    # Strong augmentation on patches: the patch is the crop (no resize), then flips, affine, jitter.
    strong = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, foreground_fraction=1.0, augment="strong").dataset(
        "train"
    )
    items = [strong[(epoch, 1)] for epoch in range(4)]
    assert all(item["image"].shape == (1, 16, 16) and item["mask"].shape == (16, 16) for item in items)
    assert set(torch.cat([item["mask"].flatten() for item in items]).tolist()) <= {0, 1, PAD_LABEL}
    with pytest.raises(ValueError, match=r"data.patch_size: got 0"):
        ISBI2012DataModule(root=str(tiny_isbi), patch_size=0)
    with pytest.raises(ValueError, match=r"data.foreground_fraction: got 1.5"):
        ISBI2012DataModule(root=str(tiny_isbi), foreground_fraction=1.5)


def test_patches_per_image_cut_several_different_patches_of_every_image_per_epoch(tiny_isbi):
    one = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, foreground_fraction=0.0)
    four = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, foreground_fraction=0.0, patches_per_image=4)
    images = len(one.dataset("train"))
    train = four.dataset("train")
    assert len(train) == 4 * images
    assert len(four.dataset("val")) == len(one.dataset("val"))  # evaluation keeps whole images, once
    names = [train[(0, i)]["name"] for i in range(len(train))]
    assert all(names.count(n) == 4 for n in set(names)) and len(set(names)) == images
    copies = [train[(0, k * images)]["image"] for k in range(4)]  # four patches of the first image
    assert len({c.numpy().tobytes() for c in copies}) == 4
    assert torch.equal(train[(0, 0)]["image"], one.dataset("train")[(0, 0)]["image"])  # the first patch as with 1
    assert four.train_dataloader().sampler.__len__() == 4 * images  # an epoch takes them all
    with pytest.raises(IndexError, match=f"out of range for a dataset of {4 * images} items"):
        train[(0, 4 * images)]
    present = check_samples(four, ["train", "val"])  # reads every file once, not once per patch
    assert present["train"] == {0, 1}
    resized = ISBI2012DataModule(root=str(tiny_isbi), patches_per_image=4)  # no patches: whole images once
    assert len(resized.dataset("train")) == images
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"data.patches_per_image: got .*expected an integer >= 1"):
            ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, patches_per_image=bad)


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
    assert any(t.startswith("val_gates/") for t in images) and any(t.startswith("val_predictions/") for t in images)
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


def test_patch_and_window_settings_are_checked_before_training():
    from segattn.config.validation import inference_problems

    base = dict(mode="sliding_window", window=None, overlap=0.5, batch_size=4, tta=False)
    assert inference_problems(base, {"patch_size": 256}, 4) == []
    problems = inference_problems({**base, "window": 100}, {"patch_size": 200}, 4)
    assert any("data.patch_size: got 200; must be a multiple of 2**model.depth = 16 (e.g. 192)" in p for p in problems)
    assert any("inference.window: got 100" in p for p in problems)
    assert any("without data.patch_size" in p for p in inference_problems(base, {"patch_size": None}, 4))
    assert any(
        "set inference.mode=sliding_window" in p
        for p in inference_problems({**base, "mode": "resize"}, {"patch_size": 64}, 4)
    )


def test_central_window_has_one_size_for_images_of_any_size():
    from segattn.training.attention_images import central_window

    items = [
        {"image": torch.randn(3, h, w), "mask": torch.zeros(h, w, dtype=torch.long), "name": "x"}
        for h, w in [(300, 500), (20, 30), (64, 64)]
    ]
    windows = [central_window(it, 50, 16, pad_label=255) for it in items]
    assert all(w["image"].shape == (3, 64, 64) and w["mask"].shape == (64, 64) for w in windows)
    assert (windows[1]["mask"] == 255).sum() == 64 * 64 - 20 * 30  # padding is ignored
    torch.stack([w["image"] for w in windows])  # one batch


def test_inference_setup_of_evaluate_and_predict(tiny_isbi):
    from segattn.cli.inference_setup import prepare_inference
    from segattn.errors import ConfigError
    from segattn.training.module import SegmentationModule

    net = dict(in_channels=1, depth=2, base_channels=8, heads=2)
    resized = ISBI2012DataModule(root=str(tiny_isbi), image_size=16)
    module = SegmentationModule(net=net, class_names=["cell", "membrane"])
    prepare_inference(module, resized, {"mode": "sliding_window", "tta": None})
    assert (
        module.inference.window == 16 and resized.native_size
    )  # the window of the training size, images at native scale
    assert resized.dataset("test")[0]["image"].shape == (1, 32, 32) and resized.test_dataloader().batch_size == 1
    patches = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16)
    module = SegmentationModule(
        net=net, class_names=["cell", "membrane"], inference={"mode": "sliding_window", "window": 16}
    )
    with pytest.raises(ConfigError, match="sliding window only"):
        prepare_inference(module, patches, {"mode": "resize"})
    with pytest.raises(ConfigError, match=r"inference.window: got 10; the model needs a multiple of 2\*\*depth = 4"):
        prepare_inference(module, patches, {"window": 10})
    with pytest.raises(ConfigError, match=r"inference: unknown keys \['stride'\]"):
        prepare_inference(module, patches, {"stride": 3})

"""segattn.data.patches: patches cut at native scale, and the data modules' patch mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segattn.data import ISBI2012DataModule
from segattn.data.checks import check_samples
from segattn.data.patches import PAD_LABEL, rescale, sample_patch


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

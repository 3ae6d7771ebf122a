"""data.cache (segattn.data.base): samples decoded into memory give the same items as reading the disk."""

from __future__ import annotations

import torch

from segattn.data import ISBI2012DataModule, OxfordPetsDataModule


def test_cached_items_equal_items_read_from_disk(tiny_pets):
    plain = OxfordPetsDataModule(root=str(tiny_pets), image_size=24)
    cached = OxfordPetsDataModule(root=str(tiny_pets), image_size=24, cache=True)
    for split in ("train", "val", "test"):
        a, b = plain.dataset(split), cached.dataset(split)
        assert b._cache is not None and len(b._cache) == len(a)
        for key in [(e, i) for e in range(3) for i in range(len(a))] if split == "train" else range(len(a)):
            x, y = a[key], b[key]
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"]), (split, key)
    # The resized arrays are what is kept: 24×24 images, not the originals.
    image, mask = cached.dataset("train")._cache[0]
    assert image.shape[:2] == (24, 24) and mask.shape == (24, 24)


def test_cache_with_patches_keeps_native_images(tiny_isbi):
    plain = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16)
    cached = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16, cache=True)
    assert cached.dataset("train")._cache[0][0].shape == (32, 32)
    for key in [(0, 0), (1, 3), (2, 5)]:
        assert torch.equal(plain.dataset("train")[key]["image"], cached.dataset("train")[key]["image"])

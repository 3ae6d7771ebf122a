"""segattn.data.oxford_pets: the Oxford-IIIT Pet layout, tasks, splits, download and errors, and the real data."""

from __future__ import annotations

import logging
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from segattn.data import OxfordPetsDataModule
from segattn.data.oxford_pets import should_download
from segattn.errors import DatasetContentError, DatasetLayoutError
from tests.helpers.data import SPLITS, data_config, item_named, names_of


def test_pets_binary_items_splits_and_labels(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.2)
    dm.setup()
    assert (dm.num_classes, dm.in_channels, dm.ignore_index, dm.class_names) == (2, 3, None, ["background", "pet"])
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 2, 4]
    item = dm.dataset("train")[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) == {0, 1}
    assert set(dm.dataset("test").names) == {f"Dog_{i}" for i in range(4)}


def test_pets_binary_counts_border_as_pet_and_trimap_keeps_three_classes(tiny_pets):
    name = "Cat_0"
    raw = np.array(Image.open(tiny_pets / "annotations" / "trimaps" / f"{name}.png"))
    binary = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.0)
    trimap = OxfordPetsDataModule(
        root=str(tiny_pets), image_size=32, val_fraction=0.0, task="trimap", ignore_border=True
    )
    sample = next(s for s in binary.dataset("train").samples if s.name == name)
    _, b = sample.load(False, binary.dataset("train").table)
    _, t = sample.load(False, trimap.dataset("train").table)
    assert np.array_equal(b, (raw != 2).astype(np.int64))  # pet = trimap 1 and 3
    assert np.array_equal(t, np.select([raw == 1, raw == 2, raw == 3], [1, 0, 2]))
    assert trimap.ignore_index == 2 and trimap.num_classes == 3
    # Binary with ignore_border: the border is left out (label 255, the ignore_index), not counted as pet.
    ignored = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.0, ignore_border=True)
    _, i = sample.load(False, ignored.dataset("train").table)
    assert (raw == 3).any() and np.array_equal(i, np.select([raw == 1, raw == 2, raw == 3], [1, 0, 255]))
    assert ignored.ignore_index == 255 and ignored.num_classes == 2 and binary.ignore_index is None


def test_pets_root_may_hold_the_torchvision_download_folder(tiny_pets, tmp_path):
    parent = tmp_path / "download-root"
    parent.mkdir()
    (parent / "oxford-iiit-pet").symlink_to(tiny_pets, target_is_directory=True)
    dm = OxfordPetsDataModule(root=str(parent), image_size=32)
    assert len(dm.dataset("test")) == 4


def test_unknown_task_is_a_clear_error(tiny_pets):
    with pytest.raises(ValueError, match=r"data.task: got 'segment'; expected one of binary, trimap"):
        OxfordPetsDataModule(root=str(tiny_pets), task="segment")


def test_pets_test_split_is_the_official_list_and_val_comes_from_trainval(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.3, seed=5)
    split = names_of(dm)
    assert split["test"] == [f"Dog_{i}" for i in range(4)]
    assert sorted(split["train"] + split["val"]) == sorted(f"Cat_{i}" for i in range(10)) and len(split["val"]) == 3


def test_trimap_task_without_ignore_border_keeps_border_as_a_class(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), task="trimap", image_size=48, val_fraction=0.0)
    assert (dm.num_classes, dm.ignore_index, dm.class_names) == (3, None, ["background", "pet", "border"])
    values = set(dm.dataset("test")[0]["mask"].unique().tolist())
    assert values == {0, 1, 2}


def test_missing_root_says_what_layout_and_how_to_get_it(tmp_path):
    dm = OxfordPetsDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetLayoutError) as info:
        dm.setup()
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "annotations/trimaps" in message
    assert "data.download=true" in message and "data.root=" in message


def test_missing_layout_part_is_named(tiny_pets):
    (tiny_pets / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"lacks annotations/test.txt"):
        OxfordPetsDataModule(root=str(tiny_pets)).setup()


def test_listed_but_missing_files_are_counted_and_named_or_skipped(tiny_pets, caplog):
    (tiny_pets / "images" / "Cat_3.jpg").unlink()
    (tiny_pets / "annotations" / "trimaps" / "Cat_7.png").unlink()
    with pytest.raises(
        DatasetContentError,
        match=r"2 of the 10 images in annotations/trainval.txt are missing on disk \(first: Cat_3, Cat_7\)",
    ):
        OxfordPetsDataModule(root=str(tiny_pets)).setup()
    with caplog.at_level(logging.WARNING):
        dm = OxfordPetsDataModule(root=str(tiny_pets), skip_missing=True, val_fraction=0.0)
        assert len(dm.dataset("train")) == 8
    assert "skipping them" in caplog.text


def test_pets_missing_images_folder_is_named_with_the_fix(tiny_pets):
    for path in (tiny_pets / "images").iterdir():
        path.unlink()
    (tiny_pets / "images").rmdir()
    with pytest.raises(DatasetLayoutError) as info:
        OxfordPetsDataModule(root=str(tiny_pets)).setup()
    message = str(info.value)
    assert "lacks images" in message and str(tiny_pets / "images") in message
    assert "data.download=true" in message and "data.root=" in message


def test_pets_skip_missing_logs_the_count(tiny_pets, caplog):
    for name in ("Cat_1", "Cat_2", "Dog_0"):
        (tiny_pets / "images" / f"{name}.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="segattn.data"):
        dm = OxfordPetsDataModule(root=str(tiny_pets), skip_missing=True, val_fraction=0.0)
        dm.setup()
    assert "2 of the 10 images in annotations/trainval.txt are missing on disk (first: Cat_1, Cat_2)" in caplog.text
    assert "1 of the 4 images in annotations/test.txt" in caplog.text
    assert (len(dm.dataset("train")), len(dm.dataset("test"))) == (8, 3)
    assert "Cat_1" not in dm.dataset("train").names


def test_pets_trimap_value_outside_1_2_3_is_named(tiny_pets):
    trimap = np.array(Image.open(tiny_pets / "annotations" / "trimaps" / "Cat_5.png"))
    trimap[0, :3] = [0, 4, 4]
    Image.fromarray(trimap).save(tiny_pets / "annotations" / "trimaps" / "Cat_5.png")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    with pytest.raises(
        DatasetContentError,
        match=r"Cat_5\.png holds values \[0, 4\] that the mask mapping does not cover; mapped values: \[1, 2, 3\]",
    ):
        item_named(dm, "train", "Cat_5")


def test_pets_grey_jpeg_loads_as_three_channels(tiny_pets):
    grey = np.array(Image.open(tiny_pets / "images" / "Cat_9.jpg").convert("L"))
    Image.fromarray(grey).save(tiny_pets / "images" / "Cat_9.jpg", format="JPEG")
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=16, val_fraction=0.0)
    item = item_named(dm, "train", "Cat_9")
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32


def test_download_decision():
    assert should_download("auto", layout_present=False) and not should_download("auto", layout_present=True)
    assert should_download(True, layout_present=True) and not should_download(False, layout_present=False)
    with pytest.raises(ValueError, match="data.download: got 'maybe'"):
        should_download("maybe", False)
    with pytest.raises(ValueError, match="data.download"):
        OxfordPetsDataModule(root="/nowhere", download=1)


def test_auto_download_is_skipped_when_the_data_is_there(tiny_pets, monkeypatch):
    import torchvision.datasets

    def fail(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", fail)
    OxfordPetsDataModule(root=str(tiny_pets), download="auto").prepare_data()


def test_offline_auto_download_ends_with_the_missing_data_message(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def offline(root, **kwargs):
        calls.append((root, kwargs))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", offline)
    dm = OxfordPetsDataModule(root=str(tmp_path / "oxford-pets"), download="auto")
    with pytest.raises(DatasetLayoutError) as err:
        dm.prepare_data()
    assert calls and calls[0][1]["download"] is True
    message = str(err.value)
    assert "downloading it failed" in message and "no network" in message and "data.root=" in message


# --- real data (SEGATTN_DATA_DIR) -------------------------------------------------------------------------------------


def test_real_oxford_pets(real_data_dir):
    dm = data_config("oxford_pets", real_data_dir, num_workers=0, persistent_workers=False)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [270, 30, 297]
    again = data_config("oxford_pets", real_data_dir, num_workers=0, persistent_workers=False)
    assert again.dataset("val").names == dm.dataset("val").names
    for split in ("train", "test"):
        item = dm.dataset(split)[0]
        assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
        assert item["mask"].dtype == torch.int64 and set(item["mask"].unique().tolist()) == {0, 1}
    trimap = data_config("oxford_pets", real_data_dir, task="trimap", ignore_border=True)
    assert set(trimap.dataset("test")[0]["mask"].unique().tolist()) == {0, 1, 2}
    # Pet pixels are a sizeable part of a pet photo.
    assert 0.05 < dm.dataset("test")[5]["mask"].float().mean() < 0.95


def test_real_pets_splits_items_and_determinism(real_data_dir):
    root = real_data_dir / "oxford-pets"
    dm = OxfordPetsDataModule(root=str(root))
    split = names_of(dm)
    assert [len(split[s]) for s in SPLITS] == [270, 30, 297]
    assert not set(split["train"]) & set(split["val"]) and "Abyssinian_82" not in sum(split.values(), [])
    assert names_of(OxfordPetsDataModule(root=str(root))) == split
    assert names_of(OxfordPetsDataModule(root=str(root), seed=1))["val"] != split["val"]
    capped = OxfordPetsDataModule(root=str(root), max_samples=12, task="trimap")
    assert [len(capped.dataset(s)) for s in SPLITS] == [12, 12, 12]
    breeds = {n.rsplit("_", 1)[0] for n in capped.dataset("test").names}
    assert len(breeds) > 1  # a cap samples the (breed-sorted) official list, not its head
    item = capped.dataset("val")[0]
    assert item["image"].shape == (3, 128, 128) and item["mask"].shape == (128, 128)
    assert set(item["mask"].unique().tolist()) <= {0, 1, 2}


def test_real_pets_binary_mask_matches_the_trimap(real_data_dir):
    root = real_data_dir / "oxford-pets"
    dm = OxfordPetsDataModule(root=str(root), val_fraction=0.1)
    sample = dm.dataset("test").samples[0]
    image, mask = sample.load(False, dm.dataset("test").table)
    trimap = np.array(Image.open(sample.mask_path))
    assert image.shape[:2] == trimap.shape and image.dtype == np.uint8 and image.shape[2] == 3
    assert np.array_equal(mask, (trimap != 2).astype(np.int64))

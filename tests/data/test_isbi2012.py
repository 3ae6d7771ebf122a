"""segattn.data.isbi2012: the ISBI-2012 layout, labels, splits and errors, and the real data when present."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segattn.data import ISBI2012DataModule
from segattn.data.splits import natural_key
from segattn.errors import DatasetContentError, DatasetLayoutError
from tests.helpers.data import SPLITS, data_config, item_named, names_of


def test_isbi_membrane_is_class_one_and_slices_split_three_ways(tiny_isbi):
    dm = ISBI2012DataModule(root=str(tiny_isbi), image_size=32)
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [6, 2, 2]
    all_names = sum((dm.dataset(s).names for s in ("train", "val", "test")), [])
    assert sorted(all_names) == [f"{i:02d}" for i in range(10)]
    item = dm.dataset("val")[0]
    raw = np.array(Image.open(tiny_isbi / "train" / "masks" / f"{item['name']}.png"))
    assert item["image"].shape == (1, 32, 32)
    assert torch.equal(item["mask"], torch.from_numpy((raw == 0).astype(np.int64)))


def test_isbi_test_slices_are_the_last_by_number_also_without_zero_padding(tiny_isbi):
    # zhixuhao/unet's PNG export names the slices 0.png ... 29.png: as text, 9 would sort last.
    # Here slices 5..14: as text 10..14 would come first and 7, 8, 9 last.
    for folder in ("images", "masks"):
        for path in (tiny_isbi / "train" / folder).iterdir():
            path.rename(path.with_name(f"{int(path.stem) + 5}.png"))
    dm = ISBI2012DataModule(root=str(tiny_isbi), image_size=32, test_fraction=0.3)
    assert dm.dataset("test").names == ["12", "13", "14"]
    assert sorted(dm.dataset("train").names + dm.dataset("val").names, key=int) == [str(i) for i in range(5, 12)]
    assert natural_key("slice2") < natural_key("slice10") < natural_key("slice10a") and natural_key("1²")


def test_isbi_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"train/masks is missing"):
        (tmp_path / "isbi" / "train" / "images").mkdir(parents=True)
        ISBI2012DataModule(root=str(tmp_path / "isbi")).setup()


def test_isbi_mask_values_other_than_0_and_255_are_named(tiny_isbi):
    mask = np.array(Image.open(tiny_isbi / "train" / "masks" / "03.png"))
    mask[5, 5], mask[6, 6] = 128, 1
    Image.fromarray(mask).save(tiny_isbi / "train" / "masks" / "03.png")
    dm = ISBI2012DataModule(root=str(tiny_isbi), val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DatasetContentError, match=r"03\.png holds values \[1, 128\] .* mapped values: \[0, 255\]"):
        item_named(dm, "train", "03")


def test_isbi_missing_root_names_it_and_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        ISBI2012DataModule(root=str(tmp_path / "isbi")).setup()
    message = str(info.value)
    assert str(tmp_path / "isbi") in message and "train/images/<id>.png" in message and "data.root=" in message


# --- real data (SEGATTN_DATA_DIR) -------------------------------------------------------------------------------------


def test_real_isbi2012(real_data_dir):
    dm = data_config("isbi2012", real_data_dir, num_workers=0, persistent_workers=False)
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [19, 5, 6]
    item = dm.dataset("test")[0]
    assert item["image"].shape == (1, 256, 256) and item["mask"].dtype == torch.int64
    membrane = item["mask"].float().mean()
    assert 0.1 < membrane < 0.35  # membrane covers 17-27 % of a slice


def test_real_isbi_splits_are_disjoint_deterministic_and_membrane_is_one(real_data_dir):
    root = real_data_dir / "isbi2012"
    dm = ISBI2012DataModule(root=str(root), image_size=512)
    split = names_of(dm)
    assert [len(split[s]) for s in SPLITS] == [19, 5, 6]
    assert split["test"] == [f"{i:02d}" for i in range(24, 30)]  # a held-out block of the volume
    assert sorted(sum(split.values(), [])) == [f"{i:02d}" for i in range(30)]
    assert names_of(ISBI2012DataModule(root=str(root))) == split
    item = dm.dataset("test")[0]
    raw = np.array(Image.open(root / "train" / "masks" / f"{item['name']}.png"))
    assert item["image"].shape == (1, 512, 512) and item["image"].dtype == torch.float32
    assert torch.equal(item["mask"], torch.from_numpy((raw == 0).astype(np.int64)))
    # Measured normalisation: a slice comes out roughly zero-mean, unit-variance.
    assert abs(float(item["image"].mean())) < 0.5 and 0.5 < float(item["image"].std()) < 1.5

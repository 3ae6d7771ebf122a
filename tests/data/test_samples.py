"""segattn.data.samples: loading a sample maps its mask values and checks that image and mask sizes agree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segattn.data import FolderDataModule, OxfordPetsDataModule
from segattn.errors import DatasetContentError
from tests.helpers.data import item_named


def test_size_mismatch_names_both_files_and_sizes(tiny_pets):
    Image.fromarray(np.full((10, 12), 2, dtype=np.uint8)).save(tiny_pets / "annotations" / "trimaps" / "Cat_4.png")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    index = dm.dataset("train").names.index("Cat_4")
    with pytest.raises(DatasetContentError, match=r"Cat_4\.jpg is 48x34 but its mask .*Cat_4\.png is 12x10"):
        dm.dataset("train")[index]


def test_mask_values_outside_the_mapping_name_file_and_values(tiny_folder):
    Image.fromarray(np.array([[0, 255, 7], [128, 0, 0]], dtype=np.uint8).repeat(12, 0).repeat(12, 1)).save(
        tiny_folder / "masks" / "img3.png"
    )
    Image.new("RGB", (36, 24)).save(tiny_folder / "images" / "img3.png")
    dm = FolderDataModule(root=str(tiny_folder), mask_mapping={0: 0, 255: 1}, val_fraction=0.0, test_fraction=0.0)
    index = dm.dataset("train").names.index("img3")
    with pytest.raises(
        DatasetContentError,
        match=r"img3\.png holds values \[7, 128\] that the mask mapping does not cover; mapped values: \[0, 255\]",
    ):
        dm.dataset("train")[index]


def test_sixteen_bit_masks_keep_small_values_and_reject_large_ones(tiny_folder):
    mask = (np.array(Image.open(tiny_folder / "masks" / "img4.png")) > 0).astype(np.uint16) * 255
    Image.fromarray(mask).save(tiny_folder / "masks" / "img4.png")
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    assert set(item_named(dm, "train", "img4")["mask"].unique().tolist()) <= {0, 1}
    mask[0, 0] = 1000
    Image.fromarray(mask).save(tiny_folder / "masks" / "img4.png")
    with pytest.raises(DatasetContentError, match=r"img4\.png holds values \[1000\]"):
        item_named(
            FolderDataModule(root=str(tiny_folder), mask_mapping={0: 0, 255: 1}, val_fraction=0.0, test_fraction=0.0),
            "train",
            "img4",
        )
    # 16-bit values map like 8-bit ones (0/65535 masks, label images with more than 255 values).
    Image.fromarray(((mask > 0) * 65535).astype(np.uint16)).save(tiny_folder / "masks" / "img4.png")
    wide = FolderDataModule(
        root=str(tiny_folder), mask_mapping={0: 0, 255: 1, 65535: 1}, val_fraction=0.0, test_fraction=0.0
    )
    sample = next(s for s in wide.dataset("train").samples if s.name == "img4")
    assert np.array_equal(sample.load(False, wide.dataset("train").table)[1], (mask > 0).astype(np.int64))
    with pytest.raises(DatasetContentError, match=r"values 0, 255, 65535 .*'data\.mask_mapping=\{0:0,255:1,65535:2\}'"):
        FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0).dataset("train")

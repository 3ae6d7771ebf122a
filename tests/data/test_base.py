"""segattn.data.base: what every data module shares: errors at setup, the item format, seeded augmentation."""

from __future__ import annotations

import albumentations as A
import pytest
import torch
from albumentations.pytorch import ToTensorV2

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule
from segattn.errors import DatasetLayoutError
from tests.helpers.data import data_config


def test_errors_are_raised_in_setup_not_in_init(tmp_path):
    for cls in (OxfordPetsDataModule, ISBI2012DataModule, FolderDataModule):
        dm = cls(root=str(tmp_path / "nowhere"))  # no disk access yet
        assert dm.num_classes >= 2 and dm.in_channels in (1, 3) and len(dm.class_names) == dm.num_classes
        with pytest.raises(DatasetLayoutError, match="nowhere"):
            dm.setup()


def test_pipelines_ending_in_ToTensorV2_give_the_same_item_format(tiny_isbi):
    eval_transform = A.Compose([A.Resize(16, 16, mask_interpolation=6), A.Normalize(mean=0.5, std=0.5), ToTensorV2()])
    dm = ISBI2012DataModule(root=str(tiny_isbi), eval_transform=eval_transform)
    item = dm.dataset("val")[0]
    assert item["image"].shape == (1, 16, 16) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (16, 16) and item["mask"].dtype == torch.int64


def test_augmentation_is_seeded_per_epoch_and_sample(tiny_pets):
    dm = data_config("oxford_pets", tiny_pets.parent, root=str(tiny_pets), image_size=32, augment="strong")
    dataset = dm.dataset("train")
    first, again, other_epoch = dataset[(0, 1)], dataset[(0, 1)], dataset[(1, 1)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert not torch.equal(first["image"], other_epoch["image"])

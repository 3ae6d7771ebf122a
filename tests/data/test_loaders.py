"""The data modules' loaders (segattn.data.base): batches, shuffling and worker settings."""

from __future__ import annotations

import pytest
import torch

from segattn.data import FolderDataModule, SyntheticDataModule


def test_loaders_batch_items_and_only_train_shuffles(tiny_folder):
    dm = FolderDataModule(root=str(tiny_folder), image_size=16, batch_size=3, val_fraction=0.3, test_fraction=0.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["mask"].shape == (3, 16, 16)
    assert batch["image"].dtype == torch.float32 and batch["mask"].dtype == torch.int64 and len(batch["name"]) == 3
    assert sum(len(b["name"]) for b in dm.train_dataloader()) == 7  # drop_last=False
    assert [n for b in dm.val_dataloader() for n in b["name"]] == dm.dataset("val").names  # in order
    epochs = []
    for epoch in range(3):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        epochs.append([n for b in loader for n in b["name"]])
    assert all(sorted(e) == sorted(dm.dataset("train").names) for e in epochs) and len({tuple(e) for e in epochs}) > 1
    assert len(dm.test_dataloader()) == 0
    with pytest.raises(ValueError, match=r"split must be one of"):
        dm.dataset("validation")


def test_loader_settings_and_persistent_workers_need_workers():
    dm = SyntheticDataModule(num_workers=2, persistent_workers=True, pin_memory=False, batch_size=5)
    loader = dm.train_dataloader()
    assert (loader.num_workers, loader.persistent_workers, loader.batch_size) == (2, True, 5)
    assert SyntheticDataModule(num_workers=0, persistent_workers=True).test_dataloader().persistent_workers is False

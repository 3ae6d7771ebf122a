"""The dataset and LightningDataModule shared by every data source.

A subclass says where the samples are (``build_splits``) and what the mask values mean
(``mask_mapping``); this base handles splitting, caps, transforms, augmentation seeding and the
data loaders.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import albumentations as A
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from segattn.data.errors import DatasetContentError
from segattn.data.samples import lookup_table
from segattn.data.transforms import image_to_tensor, resize_and_normalize
from segattn.training.resumable_loader import ResumableDataLoader, ResumableSampler

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


class Sample(Protocol):
    name: str

    def load(self, grey: bool, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class SegmentationDataset(Dataset):
    """Items ``{"image": (C, H, W) float32, "mask": (H, W) int64, "name": str}``.

    The key may be an index, or ``(epoch, index)`` as yielded by ``ResumableSampler``: then the
    augmentation is seeded from (seed, epoch, index), so it is the same in a resumed run, in any
    worker, as in an uninterrupted one.
    """

    def __init__(self, samples: Sequence[Sample], transform: A.Compose, grey: bool, table: np.ndarray, seed: int = 0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.grey = grey
        self.table = table
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        sample = self.samples[index]
        image, mask = sample.load(self.grey, self.table)
        if epoch is not None:
            self.transform.set_random_seed(zlib.crc32(f"{self.seed}/{epoch}/{index}".encode()))
        out = self.transform(image=image, mask=mask.astype(np.int32))
        return {
            "image": image_to_tensor(out["image"]),
            "mask": torch.from_numpy(np.ascontiguousarray(out["mask"])).long(),
            "name": sample.name,
        }


def seeded_split(names: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[str]]:
    """Shuffle sorted ``names`` with ``seed`` and cut off one part per fraction (at least one item
    each when the fraction is positive); the last part is the rest."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for fraction in fractions:
        count = max(1, round(fraction * len(order))) if fraction > 0 else 0
        parts.append(order[start : start + count])
        start += count
    parts.append(order[start:])
    return parts


def report_missing(missing: Sequence[str], what: str, skip: bool) -> None:
    """Raise (or, with ``skip``, log) names that a split lists but the disk lacks."""
    if not missing:
        return
    message = f"{len(missing)} {what} missing on disk (first: {', '.join(missing[:5])})"
    if not skip:
        raise DatasetContentError(message + "; set data.skip_missing=true to leave them out")
    log.warning("%s; skipping them (data.skip_missing=true)", message)


class SegmentationDataModule(L.LightningDataModule):
    """Shared loaders and settings. Subclasses set ``num_classes``, ``in_channels``,
    ``class_names``, ``ignore_index`` in ``__init__`` and implement ``build_splits``."""

    num_classes: int
    in_channels: int
    class_names: list[str]
    ignore_index: int | None = None

    def __init__(
        self,
        image_size: int = 128,
        batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 42,
        max_samples: int | None = None,
        train_transform: A.Compose | None = None,
        eval_transform: A.Compose | None = None,
    ) -> None:
        super().__init__()
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"data.max_samples: got {max_samples}; expected a positive integer or null")
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.seed = seed
        self.max_samples = max_samples
        self._train_transform = train_transform
        self._eval_transform = eval_transform
        self._datasets: dict[str, SegmentationDataset] | None = None

    # --- what subclasses provide -------------------------------------------------------------
    def build_splits(self) -> dict[str, list[Sample]]:
        """The samples of each split ("train", "val", "test"), checked against the disk."""
        raise NotImplementedError

    def mask_mapping(self) -> dict[int, int]:
        """Mask pixel value → class id (or ``ignore_index``)."""
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------
    @property
    def grey(self) -> bool:
        return self.in_channels == 1

    @property
    def eval_transform(self) -> A.Compose:
        return self._eval_transform or resize_and_normalize(self.image_size, self.grey)

    @property
    def train_transform(self) -> A.Compose:
        return self._train_transform or self.eval_transform

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """A transformed image array as the model's input tensor (C, H, W)."""
        return image_to_tensor(image)

    def setup(self, stage: str | None = None) -> None:
        if self._datasets is not None:
            return
        splits = self.build_splits()
        table = lookup_table(self.mask_mapping())
        self._datasets = {}
        for split in SPLITS:
            samples = splits.get(split, [])
            if self.max_samples is not None:
                samples = samples[: self.max_samples]
            transform = self.train_transform if split == "train" else self.eval_transform
            self._datasets[split] = SegmentationDataset(samples, transform, self.grey, table, self.seed)

    def dataset(self, split: str) -> SegmentationDataset:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.setup()
        return self._datasets[split]

    def _loader_kwargs(self) -> dict[str, Any]:
        return dict(
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def _progress(self) -> tuple[int, int]:
        """(epoch, batches trained on in it) of the attached trainer, for resumable loading."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        sampler = ResumableSampler(len(dataset), seed=self.seed, shuffle=True)
        return ResumableDataLoader(dataset, sampler=sampler, progress=self._progress, drop_last=False, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset("val"), shuffle=False, **self._loader_kwargs())

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset("test"), shuffle=False, **self._loader_kwargs())

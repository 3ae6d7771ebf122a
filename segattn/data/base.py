"""The dataset and LightningDataModule shared by every data source.

A subclass says where the samples are (``build_splits``) and what the mask values mean
(``mask_mapping``); this base handles caps, default transforms, augmentation seeding and the
data loaders.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import albumentations as A
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from segattn.data.patches import PAD_LABEL, rescale, sample_patch
from segattn.data.resumable_loader import ResumableDataLoader, ResumableSampler, ShardSampler
from segattn.data.samples import lookup_table
from segattn.data.settings import raise_on_problems
from segattn.data.splits import seeded_cap
from segattn.data.transforms import Stats, default_stats, eval_pipeline, image_to_tensor, train_pipeline
from segattn.data.workers import resolve_num_workers
from segattn.errors import DatasetLayoutError

SPLITS = ("train", "val", "test")
log = logging.getLogger(__name__)
DEFAULT_SEED = 42


class Sample(Protocol):
    name: str

    def load(self, grey: bool, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class SegmentationDataset(Dataset):
    """Items ``{"image": (C, H, W) float32, "mask": (H, W) int64, "name": str}``.

    The key may be an index, or ``(epoch, index)`` as yielded by ``ResumableSampler``: then the
    augmentation is seeded from (seed, epoch, index), so it is the same in a resumed run, in any
    worker, as in an uninterrupted one. With patches, ``patches_per_image`` random patches are cut
    from every image per epoch: item ``index`` is a patch of sample ``index % len(samples)``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: A.Compose,
        grey: bool,
        table: np.ndarray,
        seed: int = 0,
        scale: float = 1.0,
        patch: dict[str, Any] | None = None,
        patches_per_image: int = 1,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.grey = grey
        self.table = table
        self.seed = seed
        self.scale = scale
        self.patch = patch  # sample_patch's size, foreground_fraction, pad_label, ignore_index
        self.patches_per_image = patches_per_image if patch is not None else 1
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._rest = transform  # the part of the pipeline applied to cached samples

    def fill_cache(self, threads: int = 4) -> int:
        """Decode every sample once and keep it in memory; return the bytes held.

        When the pipeline starts with a (deterministic) ``Resize`` and no patches are cut, the
        resized arrays are kept and only the rest of the pipeline runs per item, so an epoch costs
        flips and normalisation instead of JPEG decoding and resampling. Filled in the main process
        before the loader's workers start, which then share it. Decoding runs in threads (the image
        libraries release the GIL).
        """
        steps = list(self.transform.transforms)
        pre = None
        if self.patch is None and steps and isinstance(steps[0], A.Resize):
            pre, self._rest = A.Compose([steps[0]]), A.Compose(steps[1:])

        def load(index: int) -> tuple[np.ndarray, np.ndarray]:
            image, mask = self.samples[index].load(self.grey, self.table)
            image, mask = rescale(image, mask, self.scale)
            if pre is not None:
                out = pre(image=image, mask=mask.astype(np.int32))
                image, mask = out["image"], out["mask"]
            return image, mask

        with ThreadPoolExecutor(max(1, threads)) as pool:
            self._cache = list(pool.map(load, range(len(self.samples))))
        return sum(image.nbytes + mask.nbytes for image, mask in self._cache)

    def __len__(self) -> int:
        return len(self.samples) * self.patches_per_image

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index %= len(self)
        key_seed = zlib.crc32(f"{self.seed}/{epoch}/{index}".encode())  # every patch of an image its own
        index = index % len(self.samples)
        sample = self.samples[index]
        if self._cache is not None:
            image, mask = self._cache[index]
        else:
            image, mask = sample.load(self.grey, self.table)
            image, mask = rescale(image, mask, self.scale)
        if self.patch is not None:
            image, mask = sample_patch(image, mask, rng=np.random.default_rng(key_seed), **self.patch)
        if epoch is not None:
            self._rest.set_random_seed(key_seed)
        out = self._rest(image=image, mask=mask.astype(np.int32))
        return {"image": as_image_tensor(out["image"]), "mask": as_mask_tensor(out["mask"]), "name": sample.name}


def as_image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A pipeline's image output as (C, H, W) float32, whether or not it ended with ToTensorV2."""
    if isinstance(image, torch.Tensor):
        return (image[None] if image.ndim == 2 else image).float()
    return image_to_tensor(image)


def as_mask_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A pipeline's mask output as (H, W) int64 class ids."""
    if isinstance(mask, torch.Tensor):
        return mask.long()
    return torch.from_numpy(np.ascontiguousarray(mask)).long()


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
        num_workers: int | str = "auto",
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        seed: int | None = 42,
        max_samples: int | None = None,
        augment: str = "light",
        vertical_flip: bool = False,
        rotate90: bool = False,
        patch_size: int | None = None,
        scale: float = 1.0,
        foreground_fraction: float = 0.33,
        patches_per_image: int = 1,
        cache: bool = False,
        normalization: dict | None = None,
        train_transform: A.Compose | None = None,
        eval_transform: A.Compose | None = None,
    ) -> None:
        super().__init__()
        raise_on_problems(
            type(self).__name__,
            dict(
                image_size=image_size,
                batch_size=batch_size,
                num_workers=num_workers,
                max_samples=max_samples,
                augment=augment,
                patch_size=patch_size,
                scale=scale,
                foreground_fraction=foreground_fraction,
                patches_per_image=patches_per_image,
            ),
        )
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = resolve_num_workers(num_workers, cache)  # "auto": by device and cache (workers.py)
        # Pinned host memory lets batches go to the GPU asynchronously; it means nothing without one.
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and self.num_workers > 0  # torch refuses it without workers
        # Splits must never depend on chance: a null seed (the run's ``seed: null``) means the default.
        self.seed = DEFAULT_SEED if seed is None else int(seed)
        self.max_samples = max_samples
        self.augment = augment
        self.vertical_flip = vertical_flip
        self.rotate90 = rotate90
        self.patch_size = patch_size
        self.patches_per_image = patches_per_image
        self.cache = cache
        if normalization is not None and set(normalization) != {"mean", "std"}:
            raise ValueError(f"data.normalization: got {normalization!r}; expected null or {{mean: [...], std: [...]}}")
        self._normalization = normalization
        self.scale = float(scale)
        self.foreground_fraction = float(foreground_fraction)
        self._train_transform = train_transform
        self._train_transform_given = train_transform is not None
        self._eval_transform = eval_transform
        self._eval_transform_given = eval_transform is not None
        self.native_size = False  # evaluation images at native size (patches, or keep_native_size())
        self._datasets: dict[str, SegmentationDataset] | None = None

    # --- what subclasses provide -------------------------------------------------------------
    def build_splits(self) -> dict[str, list[Sample]]:
        """The samples of each split ("train", "val", "test"), checked against the disk."""
        raise NotImplementedError

    def mask_mapping(self) -> dict[int, int]:
        """Mask pixel value → class id (or ``ignore_index``)."""
        raise NotImplementedError

    def resolve_mask_mapping(self, samples: list[Sample]) -> None:
        """Called once in ``setup`` with every sample the run uses, before ``mask_mapping``: a
        source whose mapping depends on its masks reads them here (the folder dataset)."""

    def normalization(self) -> Stats:
        """(mean, std) of the default pipelines: ``normalization`` when given (a pretrained
        encoder's statistics, which train.py fills in), else the defaults for the channels."""
        if self._normalization is not None:
            return tuple(self._normalization["mean"]), tuple(self._normalization["std"])
        return self.default_normalization()

    def use_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Normalise inputs with these statistics (a pretrained encoder's); before ``setup``."""
        self._normalization = {"mean": list(mean), "std": list(std)}
        self._train_transform = None if not self._train_transform_given else self._train_transform
        self._eval_transform = None if not self._eval_transform_given else self._eval_transform

    def default_normalization(self) -> Stats:
        """The statistics without a given ``normalization``; sources with measured ones override it."""
        return default_stats(self.in_channels)

    # --- shared ------------------------------------------------------------------------------
    @property
    def grey(self) -> bool:
        return self.in_channels == 1

    @property
    def eval_transform(self) -> A.Compose:
        """The given eval pipeline, else resize to ``image_size`` (with patches: keep the native
        size, for sliding-window inference) and normalise."""
        if self._eval_transform is None:
            native = self.patch_size or self.native_size
            self._eval_transform = eval_pipeline(None if native else self.image_size, self.normalization())
        return self._eval_transform

    @property
    def train_transform(self) -> A.Compose:
        """The given train pipeline, else the ``augment`` pipeline at ``image_size`` (see ``train_pipeline``)."""
        if self._train_transform is None:
            self._train_transform = train_pipeline(
                None if self.patch_size else self.image_size,
                self.normalization(),
                rgb=not self.grey,
                augment=self.augment,
                vertical_flip=self.vertical_flip,
                rotate90=self.rotate90,
            )
        return self._train_transform

    def keep_native_size(self) -> None:
        """Evaluation images at their native size, not resized to ``image_size`` (for sliding-window
        inference of a model trained on resized images). Before ``setup``."""
        if self._eval_transform_given:
            raise DatasetLayoutError(
                "inference.mode=sliding_window needs the images at native size, but this run's data.eval_transform is "
                "a custom pipeline (it may resize); use inference.mode=resize, or data.eval_transform=null"
            )
        self.native_size = True
        self._eval_transform = None

    def to_tensor(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A transformed image (array, or tensor from ToTensorV2) as the model's input (C, H, W)."""
        return as_image_tensor(image)

    def setup(self, stage: str | None = None) -> None:
        """Find and check the samples of every split (once; later calls reuse them)."""
        if self._datasets is not None:
            return
        found = self.build_splits()
        splits = {split: seeded_cap(found.get(split, []), self.max_samples, self.seed, split) for split in SPLITS}
        self.resolve_mask_mapping([sample for split in SPLITS for sample in splits[split]])
        table = lookup_table(self.mask_mapping())
        if self.patch_size and self.ignore_index is None:
            self.ignore_index = PAD_LABEL  # padding of images smaller than a patch
        patch = None
        if self.patch_size:
            # Padding of images smaller than a patch: the mean colour, which normalises to 0 as the sliding window pads.
            fill = tuple(int(round(255 * m)) for m in self.normalization()[0])  # one value per channel (one for grey)
            patch = dict(
                size=self.patch_size,
                foreground_fraction=self.foreground_fraction,
                pad_label=self.ignore_index,
                ignore_index=self.ignore_index,
                fill=fill,
            )
        self._datasets = {}
        for split in SPLITS:
            samples = splits[split]
            transform = self.train_transform if split == "train" else self.eval_transform
            self._datasets[split] = SegmentationDataset(
                samples,
                transform,
                self.grey,
                table,
                self.seed,
                self.scale,
                patch if split == "train" else None,
                self.patches_per_image,
            )
        if self.cache:
            held = sum(self._datasets[split].fill_cache() for split in SPLITS)
            log.info(
                "data.cache: %d samples decoded into memory (%.0f MiB)",
                sum(len(d) for d in self._datasets.values()),
                held / 2**20,
            )

    def dataset(self, split: str) -> SegmentationDataset:
        """The dataset of "train", "val" or "test" (set up on first use)."""
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

    def _replicas(self) -> tuple[int, int]:
        """(processes, this process's rank) of the attached trainer; (1, 0) without one."""
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        replicas, rank = self._replicas()
        sampler = ResumableSampler(len(dataset), seed=self.seed, shuffle=True, num_replicas=replicas, rank=rank)
        return ResumableDataLoader(
            dataset, sampler=sampler, progress=self._progress, drop_last=False, **self._loader_kwargs()
        )

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self.dataset(split)
        # At native size, evaluation images keep their own (possibly different) sizes: one per batch.
        kwargs = {**self._loader_kwargs(), **({"batch_size": 1} if self.patch_size or self.native_size else {})}
        replicas, rank = self._replicas()
        if replicas == 1:
            return DataLoader(dataset, shuffle=False, **kwargs)
        return DataLoader(dataset, sampler=ShardSampler(len(dataset), replicas, rank), **kwargs)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

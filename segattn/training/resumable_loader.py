"""A training data order that survives a kill: same permutation per epoch, resumable mid-epoch.

``ResumableSampler`` draws each epoch's permutation from ``(seed, epoch)`` alone and yields
``(epoch, index)`` keys, so a dataset can also seed its augmentation per sample and epoch.
``ResumableDataLoader`` implements Lightning's ``state_dict``/``load_state_dict`` loader interface:
a checkpoint records how many batches of the epoch were trained on, and a resumed run skips
exactly those, so an interrupted run sees the same batches, in the same order, with the same
augmentations, as one left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableSampler(Sampler):
    """Yields ``(epoch, index)`` for a permutation of ``range(length)`` seeded by ``(seed, epoch)``
    (or in order when ``shuffle`` is false); after ``resume_from(epoch, n)``, that epoch starts at
    its n-th sample."""

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._resume_epoch: int | None = None
        self._resume_start = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def resume_from(self, epoch: int, samples_done: int) -> None:
        self._resume_epoch, self._resume_start = epoch, samples_done

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        start = 0
        if self._resume_epoch == epoch:
            start, self._resume_epoch = self._resume_start, None
        for index in order[start:]:
            yield epoch, index


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``ResumableSampler`` whose state is the trainer's progress in the epoch.

    ``progress`` returns ``(epoch, batches trained on in that epoch)``; it is read when Lightning
    saves a checkpoint and handed back to the sampler when a run resumes.
    """

    def __init__(self, *args: Any, sampler: ResumableSampler, progress: Callable[[], tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(*args, sampler=sampler, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress()
        return {"epoch": int(epoch), "batches_done": int(batches), "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Lightning creates the resumed epoch's iterator before it calls set_epoch, so the epoch
        # is restored here too.
        self.sampler.set_epoch(state["epoch"])
        self.sampler.resume_from(state["epoch"], state["batches_done"] * state["batch_size"])

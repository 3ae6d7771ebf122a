"""A training data order that survives a kill: same permutation per epoch, resumable mid-epoch.

``ResumableSampler`` draws each epoch's permutation from ``(seed, epoch)`` alone and yields
``(epoch, index)`` keys, so a dataset can also seed its augmentation per sample and epoch.
``ResumableDataLoader`` implements Lightning's ``state_dict``/``load_state_dict`` loader interface:
a checkpoint records how many batches of the epoch were trained on, and a resumed run skips
exactly those, so an interrupted run sees the same batches, in the same order, with the same
augmentations, as one left alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """Yields ``(epoch, index)`` for a permutation of ``range(length)`` seeded by ``(seed, epoch)``
    (or in order when ``shuffle`` is false); after ``resume_from(epoch, n)``, that epoch starts at
    this process's n-th sample.

    With several processes (``num_replicas``), each takes every ``num_replicas``-th index of the
    permutation from ``rank`` on, padded like ``DistributedSampler`` so all take the same number of
    steps; the samples to skip on resuming are counted within the process's own share. Being a
    ``DistributedSampler``, Lightning uses it as is instead of wrapping it.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        # DistributedSampler.__init__ would need a dataset and an initialised process group.
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self._resume_epoch: int | None = None
        self._resume_start = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = epoch

    def resume_from(self, epoch: int, samples_done: int) -> None:
        """``samples_done``: samples this process trained on in ``epoch`` (batches done x batch size)."""
        self._resume_epoch, self._resume_start = epoch, samples_done

    def __len__(self) -> int:
        return math.ceil(self.length / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.num_replicas > 1:
            padded = len(self) * self.num_replicas
            order = (order * math.ceil(padded / max(1, len(order))))[:padded]
            order = order[self.rank :: self.num_replicas]
        start = 0
        if self._resume_epoch == epoch:
            start, self._resume_epoch = self._resume_start, None
        for index in order[start:]:
            yield epoch, index


class ShardSampler(DistributedSampler):
    """Evaluation order for one of several processes: indices ``rank, rank + n, ...`` of the split,
    without the padding of ``DistributedSampler`` (which repeats images to even the shares, so they
    would be scored twice). Shares differ by at most one image; the metrics sum counts across
    processes, so every image counts exactly once."""

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        self.length, self.num_replicas, self.rank = length, num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.num_replicas))


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``ResumableSampler`` whose state is the trainer's progress in the epoch.

    ``progress`` returns ``(epoch, batches trained on in that epoch)``; it is read when Lightning
    saves a checkpoint and handed back to the sampler when a run resumes.
    """

    def __init__(
        self, *args: Any, sampler: ResumableSampler, progress: Callable[[], tuple[int, int]], **kwargs: Any
    ) -> None:
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

"""How many data-loader worker processes: ``data.num_workers: auto`` picks by device and cache.

Worker processes pay off when something else does the arithmetic: with a GPU, the CPU cores are
free to decode and augment the next batches while the GPU trains. When the CPU trains, PyTorch
already runs its kernels on every core, and workers only compete with those threads for the same
cores. With ``data.cache`` (decoded, resized samples in memory) what is left per sample is cheap
augmentation, so loading in the training process is the better choice on a machine with few
cores.
"""

from __future__ import annotations

import os

import torch

from segattn.values import is_int

AUTO = "auto"
#: Worker processes ``auto`` gives a CUDA run at most (and never more than the cores minus one).
MAX_AUTO_WORKERS = 8
#: Without CUDA, ``auto`` starts workers for uncached data only from this many cores on.
MIN_CPUS_FOR_CPU_WORKERS = 4


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_num_workers(value: int | str, cache: bool, cuda: bool | None = None, cpus: int | None = None) -> int:
    """``value`` when it is a count; for ``"auto"``: on a machine with CUDA, one worker per core
    but one (at most ``MAX_AUTO_WORKERS``); without CUDA, 0 for cached data or on fewer than
    ``MIN_CPUS_FOR_CPU_WORKERS`` cores, otherwise 2 (decoding files can then overlap training)."""
    if value == AUTO:
        cuda = torch.cuda.is_available() if cuda is None else cuda
        cpus = available_cpus() if cpus is None else cpus
        if cuda:
            return min(MAX_AUTO_WORKERS, max(1, cpus - 1))
        return 0 if cache or cpus < MIN_CPUS_FOR_CPU_WORKERS else 2
    if not is_int(value) or value < 0:
        raise ValueError(f"data.num_workers: got {value!r}; expected an integer >= 0 or {AUTO!r}")
    return value

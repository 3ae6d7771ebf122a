"""segattn.data.workers: how many loader workers data.num_workers=auto gives."""

from __future__ import annotations

import pytest

from segattn.data import SyntheticDataModule
from segattn.data.workers import resolve_num_workers


def test_auto_workers_follow_the_device_and_the_cache():
    # With CUDA the CPU is free to load: one worker per core but one, at most 8.
    assert resolve_num_workers("auto", cache=True, cuda=True, cpus=16) == 8
    assert resolve_num_workers("auto", cache=False, cuda=True, cpus=4) == 3
    assert resolve_num_workers("auto", cache=False, cuda=True, cpus=1) == 1
    # On the CPU alone, cached samples load fastest in the training process itself.
    assert resolve_num_workers("auto", cache=True, cuda=False, cpus=16) == 0
    assert resolve_num_workers("auto", cache=False, cuda=False, cpus=16) == 2  # decoding files overlaps training
    assert resolve_num_workers("auto", cache=False, cuda=False, cpus=2) == 0  # too few cores to share
    assert resolve_num_workers(3, cache=True, cuda=False, cpus=2) == 3  # a count is taken as given
    for bad in (-1, "four", 2.5, True):
        with pytest.raises(ValueError, match=r"data.num_workers: got .*expected an integer >= 0 or 'auto'"):
            resolve_num_workers(bad, cache=False)
    with pytest.raises(ValueError, match="data.num_workers"):
        SyntheticDataModule(num_workers="many")

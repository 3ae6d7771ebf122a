"""segattn.data.splits: seeded, deterministic splits and sample caps."""

from __future__ import annotations

import pytest

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule
from segattn.data.splits import seeded_cap, seeded_split
from tests.helpers.data import SPLITS, names_of


def test_seeded_split_is_disjoint_complete_and_independent_of_input_order():
    names = [f"n{i:02d}" for i in range(30)]
    val, test, train = seeded_split(names, [0.2, 0.2], seed=7)
    assert (len(train), len(val), len(test)) == (18, 6, 6)
    assert sorted(train + val + test) == names
    assert seeded_split(list(reversed(names)), [0.2, 0.2], seed=7) == [val, test, train]
    assert seeded_split(names, [0.2, 0.2], seed=8) != [val, test, train]
    assert seeded_split(names[:2], [0.5, 0.5], seed=0)[2] == []  # never more than there is


def test_seeded_cap_is_deterministic_ordered_and_not_just_the_head():
    items = list(range(100))
    a = seeded_cap(items, 10, seed=1, split="test")
    assert a == seeded_cap(items, 10, seed=1, split="test") and a == sorted(a) and len(a) == 10
    assert a != items[:10] and a != seeded_cap(items, 10, seed=2, split="test")
    assert seeded_cap(items, None, 1, "test") == items and seeded_cap(items[:3], 10, 1, "test") == items[:3]


def test_isbi_and_folder_splits_depend_on_the_seed_only(tiny_isbi, tiny_folder):
    for make in (
        lambda seed: ISBI2012DataModule(root=str(tiny_isbi), seed=seed),
        lambda seed: FolderDataModule(root=str(tiny_folder), seed=seed),
    ):
        first = names_of(make(1))
        assert first == names_of(make(1))
        assert any(names_of(make(seed)) != first for seed in range(2, 6))
        assert not set(first["train"]) & set(first["val"]) and not set(first["val"]) & set(first["test"])


def test_splits_are_deterministic_by_seed(tiny_pets):
    names = lambda seed: OxfordPetsDataModule(root=str(tiny_pets), seed=seed, val_fraction=0.3).dataset("val").names  # noqa: E731
    assert names(1) == names(1)
    assert any(sorted(names(s)) != sorted(names(1)) for s in range(2, 8))


def test_max_samples_caps_every_split(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), max_samples=3)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 3]


def test_max_samples_is_the_same_subset_every_time(tiny_pets):
    a = names_of(OxfordPetsDataModule(root=str(tiny_pets), max_samples=2, seed=3))
    b = names_of(OxfordPetsDataModule(root=str(tiny_pets), max_samples=2, seed=3))
    assert a == b and [len(a[s]) for s in SPLITS] == [2, 1, 2]
    with pytest.raises(ValueError, match=r"data.max_samples: got 0"):
        OxfordPetsDataModule(root=str(tiny_pets), max_samples=0)

"""segattn.figures.sampling: which images and which query cells the figures show."""

from __future__ import annotations

import torch

from segattn.figures import (
    choose_queries,
    varied_sample,
    worst_k,
)


def test_queries_come_from_the_ground_truth_foreground_then_background():
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[:16, :16] = 1  # foreground: top-left quarter
    queries = choose_queries(mask, (4, 4), 3)
    assert [k for _, _, k in queries] == ["fg", "fg", "bg"]
    assert all(r < 2 and c < 2 for r, c, k in queries if k == "fg")
    assert all(not (r < 2 and c < 2) for r, c, k in queries if k == "bg")
    assert len({(r, c) for r, c, _ in queries}) == 3
    assert [k for _, _, k in choose_queries(torch.zeros(32, 32, dtype=torch.long), (4, 4), 2)] == ["bg", "bg"]


def test_sample_is_seeded_and_varied_and_worst_k_ranks_by_dice():
    names = [f"{breed}_{i}" for breed in ("Abyssinian", "Bengal", "pug", "beagle") for i in range(10)]
    first = varied_sample(names, 4, seed=3)
    assert first == varied_sample(names, 4, seed=3)
    assert len({names[i].split("_")[0] for i in first}) == 4  # one of each breed, not the first four names
    assert varied_sample(names, 4, seed=4) != first
    assert worst_k([0.9, 0.1, float("nan"), 0.5, 0.2], 2) == [1, 4]
    assert worst_k([0.9, 0.1, 0.5, 0.2], 2, exclude=[1]) == [3, 2]

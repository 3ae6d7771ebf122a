"""Which images and which query positions to show: fixed, seeded and varied, or the worst."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _group(name: str) -> str:
    """Images named ``<Breed>_<number>`` (Oxford-IIIT Pet) group by breed; others stand alone."""
    match = re.match(r"^(.*?)[_-]?\d+$", name)
    return match.group(1) if match and match.group(1) else name


def varied_sample(names: Sequence[str], count: int, seed: int) -> list[int]:
    """``count`` indices into ``names``, the same for the same seed, spread over name groups
    (breeds): the groups are shuffled, then one image is taken from each in turn."""
    if count < 0:
        raise ValueError(f"num_images must be >= 0, got {count}")
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(_group(name), []).append(index)
    order = sorted(groups)
    rng.shuffle(order)
    for key in order:
        rng.shuffle(groups[key])
    chosen: list[int] = []
    while len(chosen) < min(count, len(names)):
        for key in order:
            if groups[key] and len(chosen) < count:
                chosen.append(groups[key].pop())
    return chosen


def worst_k(scores: Sequence[float], k: int, exclude: Sequence[int] = ()) -> list[int]:
    """Indices of the ``k`` lowest scores (NaN = nothing to score, never chosen), lowest first."""
    skip = set(exclude)
    ranked = sorted((s, i) for i, s in enumerate(scores) if i not in skip and s == s)
    return [i for _, i in ranked[: max(0, k)]]


def choose_queries(
    mask: Tensor, grid: tuple[int, int], count: int, ignore_index: int | None = None
) -> list[tuple[int, int, str]]:
    """``count`` (row, col, kind) cells of the attention grid, picked from the ground truth:
    foreground first (the cell nearest the foreground's centre, then the foreground cell farthest
    from it), then background (the cell farthest from the foreground). ``kind`` is "fg" or "bg";
    without any foreground (or background), the other kind fills in."""
    gh, gw = grid
    m = mask.detach().cpu().long()
    valid = torch.ones_like(m, dtype=torch.bool) if ignore_index is None else m != ignore_index
    fg = ((m > 0) & valid).float()[None, None]
    share = F.adaptive_avg_pool2d(fg, (gh, gw))[0, 0]  # foreground share of each cell
    rows, cols = torch.meshgrid(torch.arange(gh).float(), torch.arange(gw).float(), indexing="ij")
    fg_cells = share >= 0.5
    if fg_cells.any():
        cy, cx = rows[fg_cells].mean(), cols[fg_cells].mean()
    else:
        cy, cx = torch.tensor((gh - 1) / 2), torch.tensor((gw - 1) / 2)
    dist = (rows - cy) ** 2 + (cols - cx) ** 2
    picks: list[tuple[int, int, str]] = []

    def take(cells: Tensor, score: Tensor, kind: str) -> None:
        score = score.masked_fill(~cells, float("-inf"))
        for r, c, _ in picks:
            score[r, c] = float("-inf")
        if torch.isfinite(score).any():
            flat = int(score.flatten().argmax())
            picks.append((flat // gw, flat % gw, kind))

    n_fg = (count + 1) // 2 if fg_cells.any() and (~fg_cells).any() else count
    if fg_cells.any():
        take(fg_cells, -dist, "fg")
        for _ in range(n_fg - 1):
            far = torch.stack([(rows - r) ** 2 + (cols - c) ** 2 for r, c, _ in picks]).amin(0)
            take(fg_cells, far, "fg")
    while len(picks) < count and (~fg_cells).any() and len(picks) < gh * gw:
        if not picks:
            take(~fg_cells, dist, "bg")
            continue
        far = torch.stack([(rows - r) ** 2 + (cols - c) ** 2 for r, c, _ in picks]).amin(0) + dist
        before = len(picks)
        take(~fg_cells, far, "bg")
        if len(picks) == before:
            break
    return picks[:count]

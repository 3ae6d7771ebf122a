"""Deterministic splits and caps, and the report of names a split lists but the disk lacks.

Everything here depends only on the names and the seed (never on file-system order or on the
process), so the same seed gives the same split on every machine.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import TypeVar

from segattn.errors import DatasetContentError

log = logging.getLogger(__name__)
T = TypeVar("T")


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value: ``2`` before ``10``."""
    return [
        (0, int(part), "") if part[0] in "0123456789" else (1, 0, part) for part in re.split(r"([0-9]+)", name) if part
    ]


def seeded_split(names: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[str]]:
    """Shuffle sorted ``names`` with ``seed`` and cut off one part per fraction (at least one name
    each when the fraction is positive and names remain); the last part is the rest. Each part is
    returned sorted, so logs and capped runs read in a stable order."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for fraction in fractions:
        count = max(1, round(fraction * len(order))) if fraction > 0 else 0
        count = min(count, len(order) - start)
        parts.append(sorted(order[start : start + count]))
        start += count
    parts.append(sorted(order[start:]))
    return parts


def seeded_cap(items: Sequence[T], limit: int | None, seed: int, split: str) -> list[T]:
    """At most ``limit`` items, drawn by (seed, split) and kept in their order: a capped split
    stays a sample of the whole (official lists are sorted by breed) rather than its head."""
    if limit is None or len(items) <= limit:
        return list(items)
    keep = sorted(random.Random(f"{seed}/{split}").sample(range(len(items)), limit))
    return [items[i] for i in keep]


def report_missing(missing: Sequence[str], message: str, skip: bool, detail: str = "") -> None:
    """Raise (or, with ``skip``, log a warning) for names expected but not found on disk.

    The text reads "<count> <message> (first: <names>)<detail>", e.g. "2 of the 300 images in
    annotations/trainval.txt are missing on disk (first: a, b)".
    """
    if not missing:
        return
    text = f"{len(missing)} {message} (first: {', '.join(missing[:5])}){detail}"
    if not skip:
        raise DatasetContentError(text + "; set data.skip_missing=true to leave them out")
    log.warning("%s; skipping them (data.skip_missing=true)", text)

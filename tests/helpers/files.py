"""Small datasets written to disk for a test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def folder(root: Path, splits=("train", "val"), n: int = 3, value: int = 1, size=(16, 16)) -> Path:
    """A pre-split folder dataset with 0/``value`` masks (a square of foreground)."""
    for split in splits:
        for i in range(n):
            mask = np.zeros(size, dtype=np.uint8)
            mask[4:10, 4:10] = value
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.stack([mask * 50] * 3, axis=-1)).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}{i}.png")
    return root

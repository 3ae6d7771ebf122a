"""One sample on disk: an image file and its mask file, read and checked together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segattn.data.errors import DatasetContentError
from segattn.data.io import read_image, read_mask


def lookup_table(mapping: dict[int, int], unmapped: int = -1) -> np.ndarray:
    """A 256-entry table from mask values to class ids (``unmapped`` where the mapping is silent)."""
    table = np.full(256, unmapped, dtype=np.int64)
    for value, class_id in mapping.items():
        if not 0 <= int(value) <= 255:
            raise ValueError(f"mask value {value} in the mapping is outside 0..255 (8-bit masks)")
        table[int(value)] = int(class_id)
    return table


@dataclass(frozen=True)
class FileSample:
    """An image/mask pair; ``load`` returns the image and the mask as class ids."""

    name: str
    image_path: Path
    mask_path: Path

    def load(self, grey: bool, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(self.image_path, grey=grey)
        raw = read_mask(self.mask_path)
        if image.shape[:2] != raw.shape[:2]:
            raise DatasetContentError(
                f"image {self.image_path} is {image.shape[1]}x{image.shape[0]} but its mask {self.mask_path} is "
                f"{raw.shape[1]}x{raw.shape[0]} (width x height); they must be the same size"
            )
        if raw.dtype != np.uint8:
            raise DatasetContentError(f"mask {self.mask_path} has {raw.dtype} pixels; expected 8-bit values")
        mask = table[raw]
        if (mask < 0).any():
            bad = sorted(int(v) for v in np.unique(raw[mask < 0]))
            known = sorted(int(v) for v in np.flatnonzero(table >= 0))
            raise DatasetContentError(
                f"mask {self.mask_path} holds values {bad[:10]} that the mask mapping does not cover; mapped values: {known}"
            )
        return image, mask

"""One sample on disk: an image file and its mask file, read and checked together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segattn.data.io import is_jpeg, read_image, read_mask
from segattn.errors import DatasetContentError

UNMAPPED = -1
TABLE_SIZE = 65536  # every 16-bit value (palette PNGs and 8-bit masks use the first 256)


def lookup_table(mapping: dict[int, int]) -> np.ndarray:
    """A table from 8- and 16-bit mask values to class ids (``UNMAPPED`` where the mapping is silent)."""
    table = np.full(TABLE_SIZE, UNMAPPED, dtype=np.int64)
    for value, class_id in mapping.items():
        if not 0 <= int(value) < TABLE_SIZE:
            raise ValueError(
                f"mask value {value} in the mask mapping is outside 0..{TABLE_SIZE - 1} "
                "(masks are read as 8- or 16-bit values)"
            )
        table[int(value)] = int(class_id)
    return table


def map_mask(raw: np.ndarray, table: np.ndarray, path: Path) -> np.ndarray:
    """Raw mask values → class ids; any value the mapping does not cover is an error naming the file."""
    if raw.dtype != np.uint8:
        outside = (
            np.unique(raw[(raw < 0) | (raw >= len(table))]) if np.issubdtype(raw.dtype, np.integer) else np.unique(raw)
        )
        if outside.size:
            raise DatasetContentError(
                f"mask {path} holds values {[v.item() for v in outside[:10]]} that the mask mapping does not cover; "
                f"mapped values: {mapped_values(table)}"
            )
        raw = raw.astype(np.int64)
    mask = table[raw]
    unmapped = mask == UNMAPPED
    if unmapped.any():
        bad = [int(v) for v in np.unique(raw[unmapped])]
        lossy = (
            " (a JPEG mask, whose lossy values no exact mapping covers: leave data.mask_mapping null to read it "
            "as binary)"
            if is_jpeg(path)
            else ""
        )
        raise DatasetContentError(
            f"mask {path} holds values {bad[:10]} that the mask mapping does not cover; "
            f"mapped values: {mapped_values(table)}{lossy}"
        )
    return mask


def mapped_values(table: np.ndarray) -> str:
    """The values a lookup table maps, for messages: ``[0, 255]``, or the first ten and a count."""
    known = [int(v) for v in np.flatnonzero(table != UNMAPPED)]
    return str(known) if len(known) <= 10 else f"[{', '.join(map(str, known[:10]))}, ...] ({len(known)} values)"


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
        return image, map_mask(raw, table, self.mask_path)

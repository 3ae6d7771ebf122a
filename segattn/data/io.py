"""Reading images and masks: always to plain uint8 arrays, never trusting the file extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segattn.data.errors import DatasetContentError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DatasetContentError(f"cannot read image file {path}: {err}") from None


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """(H, W) uint8 when ``grey`` else (H, W, 3) uint8 RGB.

    PIL decides the format from the bytes, so a PNG with alpha or a GIF saved as ``.jpg`` (both
    occur in Oxford-IIIT Pet) load like any other image; alpha and palettes are dropped.
    """
    return np.asarray(_open(Path(path)).convert("L" if grey else "RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) array of the mask's raw pixel values (palette indices for palette PNGs)."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("RGB", "RGBA"):
        array = np.asarray(image)[..., :3]
        if not (array == array[..., :1]).all():
            raise DatasetContentError(f"mask {path} is a colour image; expected one value per pixel (greyscale or palette PNG)")
        return array[..., 0]
    return np.asarray(image)

"""Reading images and masks: always to plain uint8 arrays, never trusting the file extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segattn.data.errors import DatasetContentError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
WIDE_INTEGER_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _open(path: Path, what: str) -> Image.Image:
    """Open and decode fully, so a truncated or corrupt file fails here, naming the file."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetContentError(f"cannot read {what} file {path}: {err}") from None


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """(H, W) uint8 when ``grey`` else (H, W, 3) uint8 RGB.

    PIL decides the format from the bytes, so a PNG with alpha or a GIF saved as ``.jpg`` (both
    occur in Oxford-IIIT Pet) load like any other image; alpha and palettes are dropped. 16-bit
    grey images (microscopy TIFFs) are scaled to 8 bits, since PIL's own conversion clips them.
    """
    path = Path(path)
    image = _open(path, "image")
    if image.mode in WIDE_INTEGER_MODES:
        wide = np.asarray(image).astype(np.int64)
        if wide.min() < 0 or wide.max() > 65535:
            raise DatasetContentError(f"image {path} has {image.mode} pixels outside 0..65535; expected 8- or 16-bit images")
        image = Image.fromarray((wide // 257).astype(np.uint8), mode="L")
    elif image.mode == "F":
        raise DatasetContentError(f"image {path} has floating-point pixels (mode F); expected 8- or 16-bit images")
    return np.asarray(image.convert("L" if grey else "RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) array of the mask's raw pixel values, as stored (palette indices for palette PNGs).

    1-bit masks read as 0/255 (like their 8-bit exports); grey+alpha keeps the grey value; an RGB
    mask is accepted only when it is grey in disguise (R = G = B). Wider integer masks keep their
    values (the mask mapping then decides whether they are valid).
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    if image.mode == "F":
        raise DatasetContentError(f"mask {path} has floating-point pixels (mode F); expected integer class values")
    array = np.asarray(image)
    if image.mode in ("LA", "PA"):
        return array[..., 0]
    if image.mode in ("RGB", "RGBA"):
        array = array[..., :3]
        if not (array == array[..., :1]).all():
            raise DatasetContentError(f"mask {path} is a colour image; expected one value per pixel (greyscale or palette PNG)")
        return array[..., 0]
    if array.ndim != 2:
        raise DatasetContentError(f"mask {path} has mode {image.mode} with {array.shape[2]} channels; expected one value per pixel")
    return array

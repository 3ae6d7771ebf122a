"""Reading images and masks: always to plain uint8 arrays, never trusting the file extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segattn.errors import DatasetContentError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"})
WIDE_INTEGER_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
#: Percentiles of an image's own values that become 0 and 255 when it is wider than 8 bits (as
#: CSBDeep and StarDist normalise microscopy): 12-bit data in 16-bit files and float images get
#: their full contrast, and a few hot pixels do not squeeze the rest.
STRETCH_PERCENTILES = (1.0, 99.8)


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
    occur in Oxford-IIIT Pet) load like any other image; alpha and palettes are dropped. Grey
    images wider than 8 bits (16- and 32-bit integer or float microscopy TIFFs), which PIL's own
    conversion clips, are brought to 8 bits by ``stretch_to_uint8``.
    """
    path = Path(path)
    image = _open(path, "image")
    if image.mode in WIDE_INTEGER_MODES or image.mode == "F":
        image = Image.fromarray(stretch_to_uint8(np.asarray(image), path), mode="L")
    return np.asarray(image.convert("L" if grey else "RGB"))


def stretch_to_uint8(values: np.ndarray, path: Path) -> np.ndarray:
    """A wide grey image to uint8: its ``STRETCH_PERCENTILES`` become 0 and 255, values beyond them
    are clipped. Dividing by the type's range instead would leave 12-bit data in a 16-bit file at
    16 grey levels. Where the percentiles coincide (a few bright cells on a flat background: more
    than 99 % of the pixels share one value) the minimum and maximum are used instead; an image
    with one value reads as 0."""
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise DatasetContentError(f"image {path} has NaN or infinite pixel values; expected finite intensities")
    low, high = np.percentile(values, STRETCH_PERCENTILES)
    if high <= low:
        low, high = values.min(), values.max()
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint(np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.uint8)


def is_jpeg(path: str | Path) -> bool:
    """Whether the file holds JPEG data (its first bytes, whatever the extension says)."""
    try:
        with open(path, "rb") as file:
            return file.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) array of the mask's raw pixel values, as stored (palette indices for palette PNGs).

    1-bit masks read as 0/255 (like their 8-bit exports); grey+alpha keeps the grey value; an RGB
    mask is accepted only when it is grey in disguise (R = G = B). Wider integer masks keep their
    values (the mask mapping then decides whether they are valid). A JPEG mask (lossy: its values
    are smeared at every edge, and colour ones are not exactly grey) reads as its luminance, and so
    does a GIF mask (DRIVE's): GIF encoders renumber the palette, so its indices say nothing.
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.format in ("JPEG", "GIF"):
        return np.asarray(image.convert("L"))
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

"""Reading images and masks: always to plain uint8 arrays, never trusting the file extension."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from segattn.errors import DatasetContentError

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
WIDE_INTEGER_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
#: Percentiles of an image's own values that become 0 and 255 when it is wider than 8 bits (as
#: CSBDeep and StarDist normalise microscopy): 12-bit data in 16-bit files and float images get
#: their full contrast, and a few hot pixels do not squeeze the rest.
STRETCH_PERCENTILES = (1.0, 99.8)


#: EXIF orientation (tag 0x0112) → the transpose that shows the pixels as viewers do.
ORIENTATION_TAG = 0x0112
TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_oriented_folders: set[Path] = set()


#: Pillow refuses images above twice its MAX_IMAGE_PIXELS (a guard against decompression bombs:
#: a small file that expands to gigabytes). segattn applies that limit itself, with a message that
#: says how to lift it (``inference.max_pixels``) for large images that are trusted.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
_max_pixels = DEFAULT_MAX_PIXELS
Image.MAX_IMAGE_PIXELS = None  # the check below replaces Pillow's


def set_max_pixels(limit: int | None) -> None:
    """The largest image (width × height) read from now on; None: the default."""
    global _max_pixels
    _max_pixels = DEFAULT_MAX_PIXELS if limit is None else int(limit)


def _open(path: Path, what: str) -> Image.Image:
    """Open and decode fully, so a truncated or corrupt file fails here, naming the file. A file of
    several pages (a TIFF stack, an animated GIF) is refused: which page is the image is not ours
    to guess."""
    try:
        image = Image.open(path)
        width, height = image.size
        if width * height > _max_pixels:
            raise DatasetContentError(
                f"{what} file {path} is {width}×{height} = {width * height:,} pixels, more than the {_max_pixels:,} "
                "read by default (a guard against decompression bombs: small files that expand to gigabytes); if the "
                f"file is trusted, allow it with inference.max_pixels={width * height}"
            )
        pages = getattr(image, "n_frames", 1)
        if pages > 1:
            raise DatasetContentError(
                f"{what} file {path} holds {pages} pages (a multi-page {image.format}, e.g. a stack of slices); "
                f"segattn reads one image per file. Save each page as its own file, e.g. with Pillow: "
                f"[im.seek(i) or im.save(f'{path.stem}_{{i:03d}}.png') for i in range(im.n_frames)]"
            )
        image.load()
        return image
    except DatasetContentError:
        raise
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetContentError(f"cannot read {what} file {path}: {err}") from None


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation (1 = as stored), read before any conversion drops the EXIF block."""
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1))
    except (ValueError, TypeError, OSError):
        return 1


def upright(image: Image.Image, orientation: int, path: Path) -> Image.Image:
    """The image as viewers and annotation tools show it: phones and cameras store the sensor's
    pixels and an EXIF orientation, and masks drawn on such photos follow what was shown. Logged
    once per folder."""
    method = TRANSPOSES.get(orientation)
    if method is None:
        return image
    if path.parent not in _oriented_folders:
        _oriented_folders.add(path.parent)
        log.info(
            "Applying EXIF orientation to files in %s that carry one (first: %s, orientation %d)",
            path.parent,
            path.name,
            orientation,
        )
    return image.transpose(method)


def is_wide_colour(image: Image.Image) -> bool:
    """A colour image of more than 8 bits per channel (16-bit RGB PNG or TIFF), which Pillow
    would read as its high bytes only. Checked before decoding (the tile's raw mode says it)."""
    for tile in image.tile or ():
        args = tile.args if hasattr(tile, "args") else tile[3]
        raw = args[0] if isinstance(args, tuple) else args
        if isinstance(raw, str) and raw.startswith(("RGB", "BGR")) and ";16" in raw:
            return True
    return False


def read_wide_colour(path: Path) -> np.ndarray:
    """A 16-bit colour file as (H, W, 3) uint8 RGB, stretched from its own percentiles (all
    channels together, so the colour balance stays) like wide grey images."""
    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if values is None or values.ndim != 3:
        raise DatasetContentError(f"cannot read image file {path} as 16-bit colour")
    rgb = cv2.cvtColor(values[..., :3], cv2.COLOR_BGR2RGB)
    return stretch_to_uint8(rgb, path)


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """(H, W) uint8 when ``grey`` else (H, W, 3) uint8 RGB, upright as its EXIF orientation says.

    PIL decides the format from the bytes, so a PNG with alpha or a GIF saved as ``.jpg`` (both
    occur in Oxford-IIIT Pet) load like any other image; alpha and palettes are dropped. Images
    wider than 8 bits (16- and 32-bit integer or float microscopy TIFFs, 16-bit colour), which
    PIL's own conversion clips or cuts to the high byte, are brought to 8 bits by
    ``stretch_to_uint8``.
    """
    path = Path(path)
    wide_colour = False
    try:
        with Image.open(path) as probe:
            wide_colour = is_wide_colour(probe)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        pass  # _open names the problem
    image = _open(path, "image")
    orientation = orientation_of(image)
    if wide_colour:
        image = Image.fromarray(read_wide_colour(path), mode="RGB")
    elif image.mode in WIDE_INTEGER_MODES or image.mode == "F":
        image = Image.fromarray(stretch_to_uint8(np.asarray(image), path), mode="L")
    return np.asarray(upright(image, orientation, path).convert("L" if grey else "RGB"))


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
    """(H, W) array of the mask's raw pixel values, as stored (palette indices for palette PNGs),
    upright as its EXIF orientation says (like its image).

    1-bit masks read as 0/255 (like their 8-bit exports); grey+alpha keeps the grey value; an RGB
    mask is accepted only when it is grey in disguise (R = G = B). Wider integer masks keep their
    values (the mask mapping then decides whether they are valid). A JPEG mask (lossy: its values
    are smeared at every edge, and colour ones are not exactly grey) reads as its luminance, and so
    does a GIF mask (DRIVE's): GIF encoders renumber the palette, so its indices say nothing.
    """
    path = Path(path)
    image = _open(path, "mask")
    kind = image.format
    image = upright(image, orientation_of(image), path)
    if kind in ("JPEG", "GIF"):
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
            raise DatasetContentError(
                f"mask {path} is a colour image; expected one value per pixel (greyscale or palette PNG)"
            )
        return array[..., 0]
    if array.ndim != 2:
        raise DatasetContentError(
            f"mask {path} has mode {image.mode} with {array.shape[2]} channels; expected one value per pixel"
        )
    return array

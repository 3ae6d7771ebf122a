"""Random training patches at native scale, oversampling the foreground (as nnU-Net does).

Resizing a 512² EM slice to 256² thins two-pixel membranes away, and a 10k² scene cannot be
resized at all: such data trains on ``patch_size``² crops of the image at its own scale (after an
optional ``scale`` resample), and is predicted by a sliding window of the same size. A share
``foreground_fraction`` of the patches is centred on a random foreground pixel, so rare or small
structures are seen often enough; the rest are placed uniformly. Images smaller than a patch are
padded, the padding labelled ``pad_label`` (the ignore index), so loss and metrics skip it.
"""

from __future__ import annotations

import cv2
import numpy as np

from segattn.data.transforms import AREA, NEAREST_EXACT

#: Label of padded pixels when the data has no ignore index of its own.
PAD_LABEL = 255


def rescale(image: np.ndarray, mask: np.ndarray | None, scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample by ``scale`` (area averaging when shrinking, bilinear when enlarging; exact nearest
    neighbour for masks); ``scale == 1`` returns the arrays unchanged."""
    if scale == 1:
        return image, mask
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=AREA if scale < 1 else cv2.INTER_LINEAR)
    if mask is not None:
        mask = cv2.resize(mask.astype(np.int32), size, interpolation=NEAREST_EXACT)
    return image, mask


def sample_patch(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    foreground_fraction: float,
    rng: np.random.Generator,
    pad_label: int,
    ignore_index: int | None = None,
    fill: float | tuple[float, ...] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``² crop of (image (H, W[, C]), mask (H, W)), padded where the image is smaller:
    the image with ``fill`` (per channel; the data module passes the normalisation mean, which is
    what the sliding window pads with at inference), the mask with ``pad_label``."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        top, left = ph // 2, pw // 2
        padded = np.empty((h + ph, w + pw, *image.shape[2:]), dtype=image.dtype)
        padded[...] = fill
        padded[top : top + h, left : left + w] = image
        image = padded
        mask = np.pad(mask, ((top, ph - top), (left, pw - left)), constant_values=pad_label)
        h, w = mask.shape
    top, left = None, None
    if foreground_fraction > 0 and rng.random() < foreground_fraction:
        foreground = (mask > 0) & (mask != pad_label)
        if ignore_index is not None:
            foreground &= mask != ignore_index
        ys, xs = np.nonzero(foreground)
        if len(ys):
            k = rng.integers(len(ys))
            top = int(np.clip(ys[k] - size // 2, 0, h - size))
            left = int(np.clip(xs[k] - size // 2, 0, w - size))
    if top is None:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[top : top + size, left : left + size], mask[top : top + size, left : left + size]

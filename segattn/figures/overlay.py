"""Label maps drawn over the photo: the one drawing of classes and errors that every figure and
every saved overlay (``evaluate.py save_predictions=true``, ``segattn-predict``) uses.

The photo is shown in dimmed grey so that the colours of ``segattn.figures.colours`` keep their
meaning whatever the photo's own colours; ignored pixels are light grey.
"""

from __future__ import annotations

import numpy as np

from segattn.figures.colours import ERROR_COLOURS, IGNORED_GREY, class_colour


def grey_photo(photo: np.ndarray, dim: float = 0.6) -> np.ndarray:
    """(H, W, 3) photo in [0, 1] → the same in dimmed grey."""
    grey = photo @ np.array([0.299, 0.587, 0.114])
    return np.repeat((grey * dim)[..., None], 3, axis=-1)


def colour_classes(
    photo: np.ndarray, mask: np.ndarray, ignore_index: int | None = None, alpha: float = 0.65
) -> np.ndarray:
    """Class colours blended over the grey photo (background left grey, ignored pixels light grey)."""
    out = grey_photo(photo)
    for c in np.unique(mask):
        if c <= 0 or c == ignore_index:
            continue
        sel = mask == c
        out[sel] = out[sel] * (1 - alpha) + class_colour(int(c)) * alpha
    if ignore_index is not None:
        out[mask == ignore_index] = IGNORED_GREY
    return out


def error_map(
    photo: np.ndarray, prediction: np.ndarray, target: np.ndarray, ignore_index: int | None = None
) -> np.ndarray:
    """True positives, false positives and false negatives of the foreground in their colours over the
    grey photo. A foreground pixel given the wrong foreground class counts as a false negative."""
    out = grey_photo(photo, dim=0.45)
    valid = np.ones_like(target, dtype=bool) if ignore_index is None else target != ignore_index
    kinds = {
        "true positive": (prediction == target) & (target > 0),
        "false positive": (prediction > 0) & (target == 0),
        "false negative": (target > 0) & (prediction != target),
    }
    for kind, sel in kinds.items():
        out[sel & valid] = ERROR_COLOURS[kind]
    return out


def to_uint8(picture: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] → uint8, for saving with PIL."""
    return (np.clip(picture, 0.0, 1.0) * 255).round().astype(np.uint8)

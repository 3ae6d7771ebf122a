"""Prediction figure: image | ground truth | prediction | errors, with the image's Dice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from segattn.figures.colours import ERROR_COLOURS, class_colour
from segattn.figures.display import panel_aspect

PANEL_INCHES = 3.2
DPI = 100


def image_dice(prediction: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    """Dice of one image, averaged over the foreground classes present in target or prediction
    (NaN when neither has any foreground): the per-image score the worst-k choice ranks by."""
    p, t = prediction.detach().cpu().long(), target.detach().cpu().long()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    scores = []
    for c in range(1, num_classes):
        if c == ignore_index:
            continue
        pc, tc = (p == c) & valid, (t == c) & valid
        denominator = int(pc.sum() + tc.sum())
        if denominator:
            scores.append(2 * int((pc & tc).sum()) / denominator)
    return float(np.mean(scores)) if scores else float("nan")


def grey_photo(photo: np.ndarray, dim: float = 0.6) -> np.ndarray:
    """The photo in dimmed grey, so coloured overlays keep their hue whatever the photo's colours."""
    grey = photo @ np.array([0.299, 0.587, 0.114])
    return np.repeat((grey * dim)[..., None], 3, axis=-1)


def colour_classes(photo: np.ndarray, mask: np.ndarray, ignore_index: int | None, alpha: float = 0.65) -> np.ndarray:
    """Class colours blended over the grey photo (background left grey, ignored pixels hatched white)."""
    out = grey_photo(photo)
    for c in np.unique(mask):
        if c <= 0 or c == ignore_index:
            continue
        sel = mask == c
        out[sel] = out[sel] * (1 - alpha) + class_colour(int(c)) * alpha
    if ignore_index is not None:
        out[mask == ignore_index] = 0.85
    return out


def error_map(photo: np.ndarray, prediction: np.ndarray, target: np.ndarray, ignore_index: int | None) -> np.ndarray:
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


def prediction_figure(
    photo: np.ndarray,
    target: Tensor,
    prediction: Tensor,
    *,
    name: str,
    dice: float,
    class_names: Sequence[str],
    ignore_index: int | None = None,
    original_size: tuple[int, int] | None = None,
    note: str = "",
) -> Figure:
    """Four labelled panels of one image; ``photo`` is (H, W, 3) in [0, 1] (see ``denormalize``)."""
    t = target.detach().cpu().numpy()
    p = prediction.detach().cpu().numpy()
    if t.shape != p.shape or t.shape != photo.shape[:2]:
        raise ValueError(f"photo {photo.shape[:2]}, target {t.shape} and prediction {p.shape} must share one size")
    aspect = panel_aspect(original_size)
    fig = Figure(figsize=(4 * PANEL_INCHES, PANEL_INCHES * aspect + 1.1), dpi=DPI)
    axes = fig.subplots(1, 4)
    panels = [
        ("image", photo),
        ("ground truth", colour_classes(photo, t, ignore_index)),
        ("prediction", colour_classes(photo, p, ignore_index)),
        ("errors", error_map(photo, p, t, ignore_index)),
    ]
    for ax, (title, picture) in zip(axes, panels):
        ax.imshow(picture, aspect=aspect, interpolation="nearest")
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    classes = [Patch(color=class_colour(c), label=class_names[c]) for c in range(1, len(class_names)) if c != ignore_index]
    errors = [Patch(color=colour, label=kind) for kind, colour in ERROR_COLOURS.items()]
    fig.legend(handles=classes + errors, loc="lower center", ncol=len(classes) + len(errors), fontsize=9, frameon=False)
    score = "n/a (no foreground)" if dice != dice else f"{dice:.3f}"
    fig.suptitle(f"{name}   Dice {score}{'   ' + note if note else ''}", fontsize=12)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.12, wspace=0.04)
    return fig

"""Prediction figure: image, ground truth, prediction and errors, with the image's Dice."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from segattn.figures.colours import ERROR_COLOURS, class_colour
from segattn.figures.display import panel_aspect
from segattn.figures.overlay import colour_classes, error_map

WIDTH_INCHES = 8.0  # 800 px at DPI: a TensorBoard card shows it without shrinking the text away
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
    """Image | ground truth over prediction | errors, 2 × 2 and 8 inches (800 px) wide, so that a
    TensorBoard card shows it at nearly full size; ``photo`` is (H, W, 3) in [0, 1] (``denormalize``)."""
    t = target.detach().cpu().numpy()
    p = prediction.detach().cpu().numpy()
    if t.shape != p.shape or t.shape != photo.shape[:2]:
        raise ValueError(f"photo {photo.shape[:2]}, target {t.shape} and prediction {p.shape} must share one size")
    aspect = panel_aspect(original_size)
    panel = (WIDTH_INCHES - 0.3) / 2
    fig = Figure(figsize=(WIDTH_INCHES, 2 * panel * aspect + 1.5), dpi=DPI)
    axes = fig.subplots(2, 2).ravel()
    panels = [
        ("image", photo),
        ("ground truth", colour_classes(photo, t, ignore_index)),
        ("prediction", colour_classes(photo, p, ignore_index)),
        ("errors", error_map(photo, p, t, ignore_index)),
    ]
    for ax, (title, picture) in zip(axes, panels):
        ax.imshow(picture, aspect=aspect, interpolation="nearest")
        ax.set_title(title, fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    classes = [
        Patch(color=class_colour(c), label=class_names[c]) for c in range(1, len(class_names)) if c != ignore_index
    ]
    errors = [Patch(color=colour, label=kind) for kind, colour in ERROR_COLOURS.items()]
    fig.legend(handles=classes + errors, loc="lower center", ncol=3, fontsize=11, frameon=False)
    score = "n/a (no foreground)" if dice != dice else f"{dice:.3f}"
    fig.suptitle(f"{name}   Dice {score}" + (f"\n{note}" if note else ""), fontsize=13)
    bottom = 0.9 / fig.get_figheight()
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        top=1 - (0.75 if note else 0.5) / fig.get_figheight(),
        bottom=bottom,
        wspace=0.03,
        hspace=0.12,
    )
    return fig

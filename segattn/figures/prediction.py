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
    """Image, ground truth, prediction and errors, 8 inches (800 px) wide: 2 × 2 panels for a
    landscape or square photo, one row of four for a portrait one, so the figure is never much
    taller than wide. ``photo`` is (H, W, 3) in [0, 1] (``denormalize``)."""
    t = target.detach().cpu().numpy()
    p = prediction.detach().cpu().numpy()
    if t.shape != p.shape or t.shape != photo.shape[:2]:
        raise ValueError(f"photo {photo.shape[:2]}, target {t.shape} and prediction {p.shape} must share one size")
    aspect = panel_aspect(original_size)
    rows, cols = (1, 4) if aspect > 1.0 else (2, 2)
    panel = (WIDTH_INCHES - 0.1 * (cols + 1)) / cols
    header, legend = (1.0 if note else 0.75), 0.75
    height = header + rows * (panel * aspect + 0.35) + legend
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    axes = fig.subplots(rows, cols).ravel()
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
    handles = classes + errors
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=11, frameon=False)
    score = "n/a (no foreground)" if dice != dice else f"{dice:.3f}"
    fig.suptitle(f"{name}   Dice {score}" + (f"\n{note}" if note else ""), fontsize=13, y=1 - 0.08 / height, va="top")
    fig.subplots_adjust(
        left=0.1 / WIDTH_INCHES,
        right=1 - 0.1 / WIDTH_INCHES,
        top=1 - (header + 0.05) / height,
        bottom=legend / height,
        wspace=0.03,
        hspace=0.35 / (panel * aspect),
    )
    return fig

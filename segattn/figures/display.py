"""From the network's input back to the photo: per-channel de-normalisation, original aspect."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

Stats = tuple[Sequence[float], Sequence[float]]


def normalization_of(transform) -> Stats | None:
    """(mean, std) in [0, 1] units of the last ``Normalize`` in an albumentations pipeline, or None.

    Read from the pipeline actually used (default or configured), so the display inverts exactly
    what the network saw."""
    steps = getattr(transform, "transforms", None) or []
    found = None
    for step in steps:
        if type(step).__name__ == "Normalize":
            found = step
    if found is None:
        return None
    scale = float(getattr(found, "max_pixel_value", 255.0) or 1.0) / 255.0
    mean = np.atleast_1d(np.asarray(found.mean, dtype=np.float64)) * scale
    std = np.atleast_1d(np.asarray(found.std, dtype=np.float64)) * scale
    return tuple(mean.tolist()), tuple(std.tolist())


def denormalize(image: Tensor, stats: Stats | None) -> np.ndarray:
    """A normalised (C, H, W) input → (H, W, 3) floats in [0, 1].

    Each channel is mapped back with its own mean and std (one min–max over all channels tints the
    photo); without known statistics each channel is min–max scaled on its own."""
    x = image.detach().float().cpu()
    c = x.shape[0]
    if stats is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32) for v in stats)
        if mean.numel() not in (1, c) or std.numel() not in (1, c):
            raise ValueError(f"normalisation has {mean.numel()} means and {std.numel()} stds for a {c}-channel image")
        x = x * std.view(-1, 1, 1) + mean.view(-1, 1, 1)
    else:
        lo = x.amin(dim=(1, 2), keepdim=True)
        hi = x.amax(dim=(1, 2), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(1e-8)
    if c == 1:
        x = x.repeat(3, 1, 1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def panel_aspect(original_size: tuple[int, int] | None) -> float:
    """matplotlib ``aspect`` that shows a square network input with the photo's height/width ratio."""
    if not original_size:
        return 1.0
    h, w = original_size
    if h <= 0 or w <= 0:
        raise ValueError(f"original_size must be positive (height, width), got {original_size}")
    return h / w

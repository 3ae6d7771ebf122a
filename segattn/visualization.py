"""Overlays of label maps on images, as (3, H, W) floats in [0, 1], for the files that
``evaluate.py save_predictions=true`` and ``segattn-predict`` write (the TensorBoard figures are
drawn with matplotlib in ``segattn.figures``)."""

from __future__ import annotations

import torch
from torch import Tensor

# Background black-ish, then distinct colours per class.
PALETTE = torch.tensor(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240]],
    dtype=torch.float32,
) / 255.0


def display_image(image: Tensor) -> Tensor:
    """A normalised (C, H, W) network input rescaled to [0, 1] RGB for display (grey repeated)."""
    image = image.detach().float().cpu()
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    lo, hi = image.amin(), image.amax()
    return (image - lo) / (hi - lo).clamp_min(1e-8)


def colorize(mask: Tensor) -> Tensor:
    """(H, W) class ids → (3, H, W) colours; ids past the palette wrap around."""
    mask = mask.detach().long().cpu()
    return PALETTE[mask % len(PALETTE)].permute(2, 0, 1)


def overlay_mask(image: Tensor, mask: Tensor, alpha: float = 0.5) -> Tensor:
    """Blend class colours over a display image where the class is not background (0)."""
    colours = colorize(mask)
    blend = (mask.detach().cpu() > 0).float().unsqueeze(0) * alpha
    return image * (1 - blend) + colours * blend


def to_uint8(image: Tensor) -> Tensor:
    """(3, H, W) floats in [0, 1] → (H, W, 3) uint8 for saving with PIL."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()

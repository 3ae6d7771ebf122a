"""Pictures for people: overlays of label maps and heatmaps of attention, as (3, H, W) floats in [0, 1].

Written with torch alone (no plotting library) so the TensorBoard callback, ``evaluate.py`` and
``segattn-predict`` share one renderer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def heatmap(values: Tensor, normalize: bool = True) -> Tensor:
    """(H, W) values → (3, H, W) colours, blue (low) → green → yellow → red (high).

    ``normalize`` min–max scales (attention rows, whose scale depends on the token count); without
    it values are taken as already in [0, 1] (gates), so maps of different epochs compare."""
    v = values.detach().float().cpu()
    if normalize:
        v = (v - v.amin()) / (v.amax() - v.amin()).clamp_min(1e-12)
    v = v.clamp(0, 1)
    r = (2 * v - 0.5).clamp(0, 1)
    g = (1.5 - (2 * v - 1).abs() * 1.5).clamp(0, 1)
    b = (1.0 - 2 * v).clamp(0, 1)
    return torch.stack([r, g, b])


def overlay_heatmap(image: Tensor, values: Tensor, alpha: float = 0.6, normalize: bool = True) -> Tensor:
    """Blend a heatmap of ``values`` (any size, resized bilinearly) over a display image."""
    values = F.interpolate(values[None, None].float(), size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return image * (1 - alpha) + heatmap(values, normalize) * alpha


def mark_point(image: Tensor, row: int, col: int, radius: int = 2) -> Tensor:
    """Draw a white square with a black border around (row, col), to show an attention query."""
    out = image.clone()
    h, w = out.shape[-2:]
    r0, r1 = max(0, row - radius - 1), min(h, row + radius + 2)
    c0, c1 = max(0, col - radius - 1), min(w, col + radius + 2)
    out[:, r0:r1, c0:c1] = 0.0
    out[:, max(0, row - radius) : min(h, row + radius + 1), max(0, col - radius) : min(w, col + radius + 1)] = 1.0
    return out


def to_uint8(image: Tensor) -> Tensor:
    """(3, H, W) floats in [0, 1] → (H, W, 3) uint8 for saving with PIL."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()

"""Sliding-window inference with Gaussian importance weighting (as nnU-Net and MONAI do).

A large image is covered by windows of the training patch size that overlap by ``overlap``;
each window's softmax is weighted by a Gaussian centred on the window (the network sees least
context at a window's border, so its predictions there count least), summed into one probability
map and divided by the summed weights. Windows go through the network ``batch_size`` at a time,
so memory holds a few windows plus the (classes × H × W) map whatever the image size; the map
lives on ``output_device`` (the CPU by default) so a 10k×10k scene does not need GPU memory.

Written here (about 100 lines) rather than taking MONAI's ``sliding_window_inference``: MONAI
would add a large dependency and seconds of import time for one function; the behaviour is
checked against a brute-force reference in tests/test_inference.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows of size ``window`` covering ``[0, length)`` with at least
    ``overlap`` (a fraction) between neighbours, the first at 0 and the last flush with the end."""
    if length <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    count = math.ceil((length - window) / step) + 1
    # Spread the windows evenly so the last one ends exactly at the border.
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


def gaussian_importance(height: int, width: int, sigma_scale: float = 0.125, device=None) -> Tensor:
    """(height, width) Gaussian weights with sigma = ``sigma_scale`` × the side, peak 1, and no
    zeros (a pixel covered only by window borders still gets a defined prediction)."""

    def axis(n: int) -> Tensor:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (x / max(sigma_scale * n, 1e-6)) ** 2)

    weights = axis(height)[:, None] * axis(width)[None, :]
    return (weights / weights.max()).clamp_min(1e-3)


def sliding_window_probabilities(
    predict: Callable[[Tensor], Tensor],
    image: Tensor,
    window: int | tuple[int, int],
    num_classes: int,
    overlap: float = 0.5,
    batch_size: int = 4,
    multiple: int = 1,
    sigma_scale: float = 0.125,
    output_device: torch.device | str | None = "cpu",
) -> Tensor:
    """Class probabilities (B, num_classes, H, W) of ``image`` (B, C, H, W).

    ``predict`` maps a batch of windows (N, C, h, w) to logits (N, num_classes, h, w). An image
    smaller than the window is padded (zeros, the normalised mean) to the window, and every
    side to a multiple of ``multiple`` (2**depth for the U-Net); the padding is cropped away.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"inference.overlap: got {overlap}; expected a fraction in [0, 1)")
    if batch_size < 1:
        raise ValueError(f"inference.batch_size: got {batch_size}; expected an integer >= 1")
    wh, ww = (window, window) if isinstance(window, int) else window
    if wh % multiple or ww % multiple:
        raise ValueError(f"inference.window: got {wh}x{ww}; the model needs multiples of {multiple} (2**depth)")
    b, _, h, w = image.shape
    out_device = image.device if output_device is None else torch.device(output_device)
    ph, pw = max(h, wh), max(w, ww)
    ph, pw = math.ceil(ph / multiple) * multiple, math.ceil(pw / multiple) * multiple
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, pw - w, 0, ph - h))
    wh, ww = min(wh, ph), min(ww, pw)
    importance = gaussian_importance(wh, ww, sigma_scale, device=image.device)
    probabilities = torch.zeros(b, num_classes, ph, pw, device=out_device)
    weight = torch.zeros(1, 1, ph, pw, device=out_device)
    boxes = [(y, x) for y in window_starts(ph, wh, overlap) for x in window_starts(pw, ww, overlap)]
    placed = importance.to(out_device)
    for y, x in boxes:
        weight[..., y : y + wh, x : x + ww] += placed
    for index in range(b):
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start : start + batch_size]
            windows = torch.stack([image[index, :, y : y + wh, x : x + ww] for y, x in chunk])
            probs = predict(windows).float().softmax(dim=1) * importance
            probs = probs.to(out_device)
            for (y, x), p in zip(chunk, probs):
                probabilities[index, :, y : y + wh, x : x + ww] += p
    return (probabilities / weight)[..., :h, :w]

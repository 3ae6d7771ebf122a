"""Fixed 2D sine-cosine positional encoding, computed for any height and width on the fly."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sincos_2d(channels: int, height: int, width: int, *, device=None, dtype=None) -> Tensor:
    """Return a (channels, height, width) encoding: the first half encodes the row, the second
    half the column, each as interleaved-free blocks of sines then cosines (Vaswani et al.
    frequencies, base 10000).

    Computed from the requested size, so there is no table of fixed size to outgrow, and created
    directly on ``device`` so the module works on CPU and CUDA alike.
    """
    if channels % 4 != 0:
        raise ValueError(
            f"2D sine-cosine positional encoding needs channels divisible by 4 (a sine and a cosine "
            f"for rows and for columns); got channels={channels}"
        )
    quarter = channels // 4
    # Compute in float32 for accuracy, cast at the end (bf16 positions would collide).
    freqs = torch.exp(
        torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter)
    )
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None] * freqs  # (H, q)
    cols = torch.arange(width, device=device, dtype=torch.float32)[:, None] * freqs  # (W, q)
    row_enc = torch.cat([rows.sin(), rows.cos()], dim=1)  # (H, 2q)
    col_enc = torch.cat([cols.sin(), cols.cos()], dim=1)  # (W, 2q)
    enc = torch.cat(
        [
            row_enc.t()[:, :, None].expand(2 * quarter, height, width),
            col_enc.t()[:, None, :].expand(2 * quarter, height, width),
        ],
        dim=0,
    )
    return enc.to(dtype=dtype or torch.get_default_dtype())


def add_positional_encoding(x: Tensor) -> Tensor:
    """``x + sincos_2d(...)`` for a (B, C, H, W) feature map, on x's device and dtype."""
    _, c, h, w = x.shape
    return x + sincos_2d(c, h, w, device=x.device, dtype=x.dtype)

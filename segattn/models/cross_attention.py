"""Multi-head cross-attention (MHCA) gate on a U-Net skip connection (Petit et al., 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segattn.models.attention import check_heads, multihead_attention
from segattn.models.blocks import ConvBNAct
from segattn.models.positional_encoding import add_positional_encoding


def token_grid(height: int, width: int, max_tokens: int) -> tuple[int, int]:
    """Largest grid (height/f, width/f), f a power of two, with at most ``max_tokens`` cells.

    Bounding the grid keeps attention cost linear in the image's pixels: at 512 px the top skip
    would otherwise attend over 65,536 tokens (a 16 GiB score matrix per head in float32).
    """
    factor = 1
    while math.ceil(height / factor) * math.ceil(width / factor) > max_tokens:
        factor *= 2
    return math.ceil(height / factor), math.ceil(width / factor)


class MultiHeadCrossAttentionGate(nn.Module):
    """Filters the skip feature S with a sigmoid gate computed by cross-attention from Y.

    Y (B, C_y, H/2, W/2) is the coarser decoder feature: it gives queries and keys; S (B, C_s,
    H, W) is the encoder skip: brought to Y's grid by max-pooling, it gives the values. Both get
    2D positional encodings. When Y's grid has more than ``max_tokens`` cells, Y (average) and S
    (max) are pooled further to a bounded grid and the gate is upsampled, so memory grows
    linearly with pixels. The attention output goes through a 1×1 conv, BatchNorm and a sigmoid
    to a one-channel gate Z in (0, 1), upsampled (bilinear) to S's size; the result is Z ⊙ S.
    """

    def __init__(self, skip_channels: int, coarse_channels: int, heads: int = 8, max_tokens: int = 1024) -> None:
        super().__init__()
        where = f"cross-attention on the {skip_channels}-channel skip"
        check_heads(skip_channels, heads, where)
        for name, c in (("skip", skip_channels), ("coarse", coarse_channels)):
            if c % 4 != 0:
                raise ValueError(
                    f"{where}: {name} channels must be divisible by 4 for the 2D positional encoding, got {c}"
                )
        if max_tokens < 1:
            raise ValueError(f"{where}: max_tokens must be >= 1, got {max_tokens}")
        self.heads = heads
        self.max_tokens = max_tokens
        self.query_key = ConvBNAct(coarse_channels, 2 * skip_channels, nn.ReLU(inplace=True))
        self.value = ConvBNAct(skip_channels, skip_channels, nn.ReLU(inplace=True))
        self.gate = ConvBNAct(skip_channels, 1)

    def forward(self, skip: Tensor, coarse: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """Return (gated skip like ``skip``, gate (B, 1, H, W), weights (B, heads, N, N) or None)."""
        b, cs, h, w = skip.shape
        grid = token_grid(*coarse.shape[-2:], self.max_tokens)
        if tuple(coarse.shape[-2:]) != grid:
            coarse = F.adaptive_avg_pool2d(coarse, grid)
        pooled_skip = F.adaptive_max_pool2d(skip, grid)  # 2×2 max-pool when grid is Y's size
        q, k = self.query_key(add_positional_encoding(coarse)).flatten(2).transpose(1, 2).chunk(2, dim=-1)
        v = self.value(add_positional_encoding(pooled_skip)).flatten(2).transpose(1, 2)
        out, weights = multihead_attention(q, k, v, self.heads, need_weights)
        out = out.transpose(1, 2).reshape(b, cs, *grid)
        gate = torch.sigmoid(self.gate(out))
        gate = F.interpolate(gate, size=(h, w), mode="bilinear", align_corners=False)
        return skip * gate, gate, weights

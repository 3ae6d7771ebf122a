"""Multi-head cross-attention (MHCA) gate on a U-Net skip connection (Petit et al., 2021)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segattn.models.attention import multihead_attention
from segattn.models.positional_encoding import positions
from segattn.models.settings import gate_problems, heads_for, positional_channels_problem
from segattn.models.token_pooling import adaptive_pool2d, key_value_grid


class MultiHeadCrossAttentionGate(nn.Module):
    """Filters the skip feature S with a sigmoid gate computed by cross-attention from Y.

    Y (B, C_y, H/2, W/2) is the coarser decoder feature, S (B, C_s, H, W) the encoder skip. Each
    gets a 2D sine-cosine positional encoding and is layer-normalised; then learned linear
    projections (signed, no ReLU before the dot product) give queries from every cell of Y, keys
    from Y and values from S max-pooled to Y's grid. When Y's grid has more than ``max_tokens``
    cells, keys and values are pooled further (average for Y, max for S, positions averaged) to
    at most ``max_tokens`` cells; queries are never pooled. Softmax over the keys, per head (heads
    = C_s // ``head_dim``, at least 1). The result (C_s channels on Y's grid) goes through a 1×1
    conv, BatchNorm and a sigmoid to the gate Z: one channel (``gate_channels="one"``) or one per
    skip channel (``"skip"``). ``gate_batchnorm=False`` gives the 1×1 conv a bias instead of the
    BatchNorm (the gate of Oktay et al.'s Attention U-Net): the pre-activation's spread is then
    learned by the conv rather than normalised per batch. Z is upsampled ×2 (bilinear) to S's size
    and the output is Z ⊙ S.
    """

    def __init__(
        self,
        skip_channels: int,
        coarse_channels: int,
        head_dim: int = 32,
        max_tokens: int = 256,
        gate_channels: str = "skip",
        qk_norm: bool = True,
        gate_init: float = 0.9,
        gate_batchnorm: bool = True,
    ) -> None:
        super().__init__()
        problems = [
            positional_channels_problem(skip_channels, "skip channels"),
            positional_channels_problem(coarse_channels, "coarse channels"),
            *gate_problems(head_dim, max_tokens, gate_channels, gate_init, gate_batchnorm),
        ]
        if any(problems):
            raise ValueError(
                f"cross-attention on the {skip_channels}-channel skip: " + "; ".join(p for p in problems if p)
            )
        self.heads = heads_for(skip_channels, head_dim)  # always divides the channels
        self.max_tokens = max_tokens
        self.coarse_norm = nn.LayerNorm(coarse_channels)
        self.skip_norm = nn.LayerNorm(skip_channels)
        self.query = nn.Linear(coarse_channels, skip_channels)
        self.key = nn.Linear(coarse_channels, skip_channels)
        self.value = nn.Linear(skip_channels, skip_channels)
        out = 1 if gate_channels == "one" else skip_channels
        # The gate's 1×1 conv, applied to the tokens as a linear map (one matmul, no conv layout
        # conversions), then BatchNorm on the map (or the conv's own bias).
        self.gate_projection = nn.Linear(skip_channels, out, bias=not gate_batchnorm)
        self.gate_norm = nn.BatchNorm2d(out) if gate_batchnorm else None
        # The gate starts at gate_init everywhere (0.5: halfway; near 1: the skip passes nearly unchanged).
        shift = self.gate_norm.bias if gate_batchnorm else self.gate_projection.bias
        nn.init.constant_(shift, math.log(gate_init / (1 - gate_init)))
        head_dim = skip_channels // self.heads
        self.qk_norm = nn.ModuleList([nn.LayerNorm(head_dim), nn.LayerNorm(head_dim)]) if qk_norm else None

    def forward(
        self, skip: Tensor, coarse: Tensor, need_weights: bool = False, pooled_skip: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Return (gated skip like ``skip``, gate (B, 1 or C_s, H, W), weights (B, heads, Nq, Nkv) or None).

        ``pooled_skip``: the skip already max-pooled 2×2 to Y's grid, when the caller has it (the
        U-Net's encoder computes exactly that for its next level); computed here otherwise.
        """
        b, cs, h, w = skip.shape
        hy, wy = coarse.shape[-2:]
        grid = key_value_grid(hy, wy, self.max_tokens)
        coarse = coarse + positions(coarse.shape[1], hy, wy, device=coarse.device, dtype=coarse.dtype)
        if pooled_skip is None:
            pooled_skip = F.max_pool2d(skip, 2) if (h, w) == (2 * hy, 2 * wy) else F.adaptive_max_pool2d(skip, (hy, wy))
        # A traced graph (export) pools always: its sizes are only known at run time, and pooling
        # to the map's own grid changes nothing.
        pooled = torch.jit.is_tracing() or grid != (hy, wy)
        # The positions of a pooled cell are the mean of its members', so they stay comparable
        # with the queries' (pooling Y + PE averages both).
        keys_map = adaptive_pool2d(coarse, grid, "avg") if pooled else coarse
        values_map = (adaptive_pool2d(pooled_skip, grid, "max") if pooled else pooled_skip) + positions(
            cs, hy, wy, device=skip.device, dtype=skip.dtype, grid=grid if pooled else None
        )
        queries = self.coarse_norm(tokens(coarse))
        keys = self.coarse_norm(tokens(keys_map)) if pooled else queries  # unpooled: the same tokens
        values = self.skip_norm(tokens(values_map))
        out, weights = multihead_attention(
            self.query(queries), self.key(keys), self.value(values), self.heads, need_weights, self.qk_norm
        )
        gate = self.gate_projection(out).transpose(1, 2).reshape(b, self.gate_projection.out_features, hy, wy)
        gate = torch.sigmoid(self.gate_norm(gate) if self.gate_norm is not None else gate)
        # The token layout leaves the gate channels-last; in the skip's layout instead (a copy at Y's
        # size), the upsampled gate, the product and their gradients avoid full-size layout copies.
        gate = gate.contiguous(memory_format=memory_format_of(skip))
        if torch.jit.is_tracing():  # the U-Net's skips are exactly twice Y's size; a size would be frozen
            gate = F.interpolate(gate, scale_factor=2.0, mode="bilinear", align_corners=False)
        else:
            gate = F.interpolate(gate, size=(h, w), mode="bilinear", align_corners=False)
        return skip * gate, gate, weights


def tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) → (B, H·W, C)."""
    return x.flatten(2).transpose(1, 2)


def memory_format_of(x: Tensor) -> torch.memory_format:
    """``channels_last`` when ``x`` is laid out that way (and not also plain contiguous), else contiguous."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format

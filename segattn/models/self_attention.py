"""Multi-head self-attention (MHSA) over the deepest U-Net feature map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segattn.models.attention import multihead_attention
from segattn.models.positional_encoding import add_positional_encoding
from segattn.models.settings import heads_problem, positional_channels_problem, registers_problem


class MultiHeadSelfAttention2d(nn.Module):
    """MHSA block of the U-Net Transformer bottleneck.

    The map X (B, C, h, w) gets a 2D sine-cosine positional encoding, becomes h·w tokens, is
    layer-normalised (pre-norm) and attends to itself with ``heads`` heads; the projected result
    is added back to X (residual), so the block starts close to identity and trains stably.

    ``registers`` learned tokens (Darcet et al., "Vision Transformers Need Registers", ICLR 2024)
    join the keys and values: a head that has nothing to look at for a query can put its weight
    there instead of on a few uninformative cells (the zero-padded image border). They have no
    position and no output: with a single attention layer a register's own query would change
    nothing, so it is not used. Explicit weights then have h·w + ``registers`` key columns, the
    registers last (so entropies are over log(h·w + registers)).
    """

    def __init__(self, channels: int, heads: int = 8, qk_norm: bool = True, registers: int = 0) -> None:
        super().__init__()
        problems = [
            heads_problem(channels, heads),
            positional_channels_problem(channels, "channels"),
            registers_problem(registers),
        ]
        if any(problems):
            raise ValueError("self-attention: " + "; ".join(p for p in problems if p))
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.qk_norm = (
            nn.ModuleList([nn.LayerNorm(channels // heads), nn.LayerNorm(channels // heads)]) if qk_norm else None
        )
        # Scaled like the feature tokens after the pre-norm's input (unit-scale entries), so their
        # keys start comparable with the cells' instead of vanishing in the softmax.
        self.registers = nn.Parameter(torch.randn(1, registers, channels)) if registers else None

    @property
    def num_registers(self) -> int:
        return 0 if self.registers is None else self.registers.shape[1]

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Return (output map like x, weights (B, heads, h·w, h·w + registers) or None)."""
        b, c, h, w = x.shape
        tokens = self.norm(add_positional_encoding(x).flatten(2).transpose(1, 2))  # (B, N, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        if self.registers is not None:
            extra = self.norm(self.registers.to(tokens.dtype)).expand(b, -1, -1)
            _, k_reg, v_reg = self.qkv(extra).chunk(3, dim=-1)
            k, v = torch.cat([k, k_reg], dim=1), torch.cat([v, v_reg], dim=1)
        out, weights = multihead_attention(q, k, v, self.heads, need_weights, self.qk_norm)
        out = self.proj(out).transpose(1, 2).reshape(b, c, h, w)
        return x + out, weights

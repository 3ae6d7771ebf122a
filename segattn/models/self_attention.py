"""Multi-head self-attention (MHSA) over the deepest U-Net feature map."""

from __future__ import annotations

from torch import Tensor, nn

from segattn.models.attention import check_heads, multihead_attention
from segattn.models.positional_encoding import add_positional_encoding


class MultiHeadSelfAttention2d(nn.Module):
    """MHSA block of the U-Net Transformer bottleneck.

    The map X (B, C, h, w) gets a 2D sine-cosine positional encoding, becomes h·w tokens, is
    layer-normalised (pre-norm) and attends to itself with ``heads`` heads; the projected result
    is added back to X (residual), so the block starts close to identity and trains stably.
    """

    def __init__(self, channels: int, heads: int = 8, qk_norm: bool = False) -> None:
        super().__init__()
        check_heads(channels, heads, "self-attention")
        if channels % 4 != 0:
            raise ValueError(f"self-attention: channels must be divisible by 4 for the 2D positional encoding, got {channels}")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.qk_norm = nn.ModuleList([nn.LayerNorm(channels // heads), nn.LayerNorm(channels // heads)]) if qk_norm else None

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Return (output map like x, weights (B, heads, h·w, h·w) or None)."""
        b, c, h, w = x.shape
        tokens = add_positional_encoding(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(self.norm(tokens)).chunk(3, dim=-1)
        out, weights = multihead_attention(q, k, v, self.heads, need_weights, self.qk_norm)
        out = self.proj(out).transpose(1, 2).reshape(b, c, h, w)
        return x + out, weights

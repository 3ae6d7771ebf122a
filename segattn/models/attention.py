"""Multi-head scaled dot-product attention with a fused path and an explicit (inspectable) path."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, C) → (B, heads, N, C / heads), with unit stride along the head dimension.

    Token sequences made by flattening and transposing a feature map have stride N along C; the
    fused CPU kernel of ``scaled_dot_product_attention`` then silently falls back to the math path,
    which materialises the N×N scores. ``contiguous`` copies
    such inputs once (and is free for contiguous ones)."""
    b, n, c = x.shape
    return x.contiguous().view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d) → (B, N, heads · d)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def multihead_attention(
    q: Tensor, k: Tensor, v: Tensor, heads: int, need_weights: bool = False, qk_norm: tuple | None = None
) -> tuple[Tensor, Tensor | None]:
    """Attention of token sequences q (B, Nq, C), k (B, Nk, C), v (B, Nk, Cv) over ``heads`` heads.

    The softmax runs over the keys. Without ``need_weights`` the fused
    ``F.scaled_dot_product_attention`` kernel is used and no Nq×Nk matrix is materialised; with
    it, the textbook softmax(QKᵀ/√d)·V is computed and the weights (B, heads, Nq, Nk) returned.
    Both give the same result up to float rounding. ``qk_norm`` = (norm of queries, norm of keys),
    applied per head: bounded attention logits, so heads cannot collapse onto one key by growth
    of the logits alone (QK-norm, Dehghani et al. 2023).
    """
    qh, kh, vh = split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)
    if qk_norm is not None:
        qh, kh = qk_norm[0](qh), qk_norm[1](kh)
    if not need_weights:
        out = F.scaled_dot_product_attention(qh, kh, vh)
        return merge_heads(out), None
    scale = 1.0 / math.sqrt(qh.shape[-1])
    weights = torch.softmax((qh @ kh.transpose(-2, -1)) * scale, dim=-1)
    return merge_heads(weights @ vh), weights

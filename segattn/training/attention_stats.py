"""Is the attention doing anything? Entropy of the attention heads and contrast of the gates.

- **Normalised entropy** of a head: the entropy of each query's distribution over the keys,
  divided by log(number of keys), averaged over queries and images. 1 = uniform (the head
  averages everything), near 0 = every query looks at one key. A head whose queries all send
  their weight to the same key is caught by the *query agreement*: the mean over queries of the
  weight they give to the key that the average query favours most (1 = all the same one key).
- **Gate contrast** of an MHCA level: mean gate on foreground pixels minus mean gate on
  background pixels (gate channels averaged), over the whole split. 0 = the gate does not tell
  foreground from background; positive = it lets the foreground's skip features through more.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from segattn.models.unet_attention import AttentionMaps


def head_entropy(weights: Tensor) -> Tensor:
    """(B, heads, Nq, Nk) attention weights → (B, heads) mean normalised entropy over the queries."""
    nk = weights.shape[-1]
    if nk < 2:
        return weights.new_zeros(weights.shape[:2])
    p = weights.float().clamp_min(1e-12)
    return -(p * p.log()).sum(-1).mean(-1) / math.log(nk)


def query_agreement(weights: Tensor) -> Tensor:
    """(B, heads, Nq, Nk) → (B, heads): mean weight the queries give to the key their average favours."""
    favourite = weights.float().mean(2).argmax(-1)  # (B, heads)
    index = favourite[:, :, None, None].expand(*weights.shape[:3], 1)
    return weights.float().gather(-1, index).squeeze(-1).mean(-1)


class AttentionStats:
    """Accumulates entropy per MHSA head and per MHCA level, and gate contrast per level, over
    batches of ``AttentionMaps`` and masks; ``compute`` returns plain lists (JSON-ready)."""

    def __init__(self, ignore_index: int | None = None) -> None:
        self.ignore_index = ignore_index
        self.images = 0
        self.mhsa_entropy: Tensor | None = None
        self.mhsa_agreement: Tensor | None = None
        self.mhca_entropy: list[Tensor] = []
        self.gate_sums: list[Tensor] = []  # per gated level: [sum on fg, fg pixels, sum on bg, bg pixels]
        self.gate_levels: list[int] = []
        self.depth = 0

    def update(self, maps: AttentionMaps, mask: Tensor) -> None:
        b = mask.shape[0]
        self.images += b
        if maps.self_attention is not None:
            entropy = head_entropy(maps.self_attention).sum(0).cpu()
            agreement = query_agreement(maps.self_attention).sum(0).cpu()
            self.mhsa_entropy = entropy if self.mhsa_entropy is None else self.mhsa_entropy + entropy
            self.mhsa_agreement = agreement if self.mhsa_agreement is None else self.mhsa_agreement + agreement
        if not maps.gates:
            return
        if not self.gate_sums:
            self.gate_sums = [torch.zeros(4, dtype=torch.float64) for _ in maps.gates]
            self.mhca_entropy = [torch.zeros((), dtype=torch.float64) for _ in maps.gates]
            self.gate_levels = list(maps.gate_levels) or list(range(len(maps.gates)))
            self.depth = maps.depth
        valid = torch.ones_like(mask, dtype=torch.bool) if self.ignore_index is None else mask != self.ignore_index
        foreground = (mask > 0) & valid
        background = (mask == 0) & valid
        for level, (gate, weights) in enumerate(zip(maps.gates, maps.cross_attention)):
            g = gate.float().mean(1, keepdim=True)
            if g.shape[-2:] != mask.shape[-2:]:
                g = F.interpolate(g, size=mask.shape[-2:], mode="nearest")
            g = g[:, 0]
            self.gate_sums[level] += torch.tensor(
                [g[foreground].sum().item(), foreground.sum().item(), g[background].sum().item(), background.sum().item()],
                dtype=torch.float64,
            )
            if weights is not None:
                self.mhca_entropy[level] += head_entropy(weights).mean(1).sum().item()

    def compute(self) -> dict:
        """``{"mhsa_head_entropy": [...], "mhsa_query_agreement": [...], "mhca_entropy": [...],
        "gate_contrast": [...], "gate_mean_foreground": [...], "gate_mean_background": [...]}``
        (lists per head or per level, level 0 = full resolution, None at a level without MHCA;
        keys absent without that part)."""
        out: dict = {}
        n = max(1, self.images)
        if self.mhsa_entropy is not None:
            out["mhsa_head_entropy"] = [round(float(v) / n, 4) for v in self.mhsa_entropy]
            out["mhsa_query_agreement"] = [round(float(v) / n, 4) for v in self.mhsa_agreement]
        if self.gate_sums:
            fg = [float(s[0] / s[1]) if s[1] > 0 else None for s in self.gate_sums]
            bg = [float(s[2] / s[3]) if s[3] > 0 else None for s in self.gate_sums]
            out["gate_mean_foreground"] = [None if v is None else round(v, 4) for v in fg]
            out["gate_mean_background"] = [None if v is None else round(v, 4) for v in bg]
            out["gate_contrast"] = [None if f is None or b is None else round(f - b, 4) for f, b in zip(fg, bg)]
            out["mhca_entropy"] = [round(float(e) / n, 4) for e in self.mhca_entropy]
            for key in ("gate_mean_foreground", "gate_mean_background", "gate_contrast", "mhca_entropy"):
                out[key] = by_level(out[key], self.gate_levels, self.depth)
        return out


def by_level(values: list, levels: list[int], depth: int = 0) -> list:
    """Values of the gated levels placed at their level's index: one entry per skip level of the
    model (``depth``; at least up to the deepest gated level), None at levels without MHCA."""
    out = [None] * max(depth, max(levels) + 1)
    for level, value in zip(levels, values):
        out[level] = value
    return out

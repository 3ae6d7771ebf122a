"""Is the attention doing anything? Entropy of the attention heads and contrast of the gates.

- **Normalised entropy** of a head: the entropy of each query's distribution over the keys,
  divided by log(number of keys), averaged over queries and images. 1 = uniform (the head
  averages everything), near 0 = every query looks at one key. A head whose queries all send
  their weight to the same key is caught by the *query agreement*: the mean over queries of the
  weight they give to the key that the average query favours most (1 = all the same one key).
- **Border ratio** (the attention sink): the share of its attention over the bottleneck's cells
  that a foreground query gives to the outermost ring of cells (the image border, where the
  encoder's convolutions saw zero padding), divided by that ring's share of the cells. 1 = no
  preference; 2 = the border gets twice its share (Darcet et al.'s sink tokens). Its companion,
  the **foreground-key ratio**: the share a foreground query gives to foreground cells over
  their share of the image (above 1: it looks at the object). Both leave out the weight on
  register tokens, which the **register mass** reports (mean over all queries). A foreground query
  that looks at its context looks at background, which in photos lies mostly at the border; the
  **background border ratio** separates the two: the same ratio over the background cells only
  (1 = among background cells the border draws no more than its share: no sink).
- **Gate contrast** of an MHCA level: mean gate on foreground pixels minus mean gate on
  background pixels (gate channels averaged), over the whole split. 0 = the gate does not tell
  foreground from background; positive = it lets the foreground's skip features through more.
  With a gate per skip channel, channels may open on foreground and others on background, which
  cancel in that mean: the **channel contrast** is the mean over channels of each channel's
  |foreground − background| (0 = no channel tells them apart). A gate's level itself carries no
  information: the decoder's BatchNorm after the concatenation rescales a uniformly dimmed skip.
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


def border_cells(height: int, width: int, device=None) -> Tensor:
    """(height·width,) bool: the outermost ring of a height × width grid."""
    ring = torch.zeros(height, width, dtype=torch.bool, device=device)
    ring[0], ring[-1], ring[:, 0], ring[:, -1] = True, True, True, True
    return ring.flatten()


def foreground_cells(mask: Tensor, grid: tuple[int, int], ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """(B, N) bool foreground and valid cells of the attention grid: a cell is foreground when
    more than half of its labelled pixels are, valid when it has any labelled pixel."""
    valid = torch.ones_like(mask, dtype=torch.bool) if ignore_index is None else mask != ignore_index
    fg = ((mask > 0) & valid).float()[:, None]
    labelled = F.adaptive_avg_pool2d(valid.float()[:, None], grid)[:, 0].flatten(1)
    share = F.adaptive_avg_pool2d(fg, grid)[:, 0].flatten(1) / labelled.clamp_min(1e-6)
    return (share > 0.5) & (labelled > 0), labelled > 0


def sink_sums(weights: Tensor, grid: tuple[int, int], mask: Tensor, ignore_index: int | None) -> Tensor:
    """Sums behind the border ratio, foreground-key ratio, register mass and background border
    ratio of MHSA weights (B, heads, N, N + R) and masks (B, H, W): [border share × fg queries,
    fg queries, fg-key ratio × images with fg and bg cells, such images, register mass × queries,
    queries, background border ratio × images with bg cells on and off the border, such images]."""
    n = grid[0] * grid[1]
    w = weights.float()
    cells = w[..., :n]
    spatial = cells.sum(-1).clamp_min(1e-12)  # (B, heads, N): the weight left for the cells
    ring = border_cells(*grid, device=w.device)
    border_share = (cells[..., ring].sum(-1) / spatial) / (ring.float().mean())  # (B, heads, N)
    fg, valid = foreground_cells(mask, grid, ignore_index)  # (B, N)
    fg_queries = fg[:, None, :].expand_as(border_share)
    fg_share = (cells * fg[:, None, None, :].float()).sum(-1) / spatial  # (B, heads, N)
    cell_share = fg.float().sum(-1) / valid.float().sum(-1).clamp_min(1)  # (B,)
    has_both = (cell_share > 0) & (cell_share < 1)
    per_image = (
        torch.where(fg_queries, fg_share, 0.0).sum((1, 2))
        / fg_queries.sum((1, 2)).clamp_min(1)
        / cell_share.clamp_min(1e-6)
    )
    registers = w[..., n:].sum(-1)
    # Among the background cells only: does the border draw more than its share? (Foreground
    # queries that look at context look at background, which in photos is mostly at the border.)
    bg = ~fg & valid  # (B, N)
    bg_ring, bg_inner = bg & ring, bg & ~ring
    bg_mass = (cells * bg[:, None, None, :].float()).sum(-1).clamp_min(1e-12)
    ring_in_bg = (cells * bg_ring[:, None, None, :].float()).sum(-1) / bg_mass  # (B, heads, N)
    ring_share_of_bg = bg_ring.float().sum(-1) / bg.float().sum(-1).clamp_min(1)
    has_ring_and_inner = bg_ring.any(-1) & bg_inner.any(-1) & fg.any(-1)
    bg_per_image = (
        torch.where(fg_queries, ring_in_bg, 0.0).sum((1, 2))
        / fg_queries.sum((1, 2)).clamp_min(1)
        / ring_share_of_bg.clamp_min(1e-6)
    )
    return torch.tensor(
        [
            border_share[fg_queries].sum().item(),
            fg_queries.sum().item(),
            per_image[has_both].sum().item(),
            has_both.sum().item(),
            registers.sum().item(),
            registers.numel(),
            bg_per_image[has_ring_and_inner].sum().item(),
            has_ring_and_inner.sum().item(),
        ],
        dtype=torch.float64,
    )


def gate_contrast(gate: Tensor, target: Tensor, ignore_index: int | None = None) -> float:
    """(C, h, w) gate of one image → mean gate (over channels) on foreground − on background, at
    the mask's size (nearest upsampling, as ``AttentionStats``); NaN when either is empty."""
    g = gate.detach().float().cpu().mean(0, keepdim=True)[None]
    g = F.interpolate(g, size=target.shape[-2:], mode="nearest")[0, 0]
    t = target.detach().cpu()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    fg, bg = (t > 0) & valid, (t == 0) & valid
    if not fg.any() or not bg.any():
        return float("nan")
    return float(g[fg].mean() - g[bg].mean())


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
        self.mhsa_sink = torch.zeros(8, dtype=torch.float64)
        self.mhca_entropy: list[Tensor] = []
        self.gate_sums: list[Tensor] = []  # per gated level: [sum on fg, fg pixels, sum on bg, bg pixels]
        self.channel_sums: list[Tensor | None] = []  # per gated level: (2, C) gate sums on fg and on bg per channel
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
            if maps.self_attention_size is not None:
                self.mhsa_sink += sink_sums(maps.self_attention, maps.self_attention_size, mask, self.ignore_index)
        if not maps.gates:
            return
        if not self.gate_sums:
            self.gate_sums = [torch.zeros(4, dtype=torch.float64) for _ in maps.gates]
            self.channel_sums = [None for _ in maps.gates]
            self.mhca_entropy = [torch.zeros((), dtype=torch.float64) for _ in maps.gates]
            self.gate_levels = list(maps.gate_levels) or list(range(len(maps.gates)))
            self.depth = maps.depth
        valid = torch.ones_like(mask, dtype=torch.bool) if self.ignore_index is None else mask != self.ignore_index
        foreground = (mask > 0) & valid
        background = (mask == 0) & valid
        for level, (gate, weights) in enumerate(zip(maps.gates, maps.cross_attention)):
            full = gate.float()
            if full.shape[-2:] != mask.shape[-2:]:
                full = F.interpolate(full, size=mask.shape[-2:], mode="nearest")
            per_channel = torch.stack(
                [(full * foreground[:, None]).sum((0, 2, 3)), (full * background[:, None]).sum((0, 2, 3))]
            )
            self.channel_sums[level] = per_channel.double().cpu() + (
                0 if self.channel_sums[level] is None else self.channel_sums[level]
            )
            g = full.mean(1)
            self.gate_sums[level] += torch.tensor(
                [
                    g[foreground].sum().item(),
                    foreground.sum().item(),
                    g[background].sum().item(),
                    background.sum().item(),
                ],
                dtype=torch.float64,
            )
            if weights is not None:
                self.mhca_entropy[level] += head_entropy(weights).mean(1).sum().item()

    def compute(self) -> dict:
        """``{"mhsa_head_entropy": [...], "mhsa_query_agreement": [...], "mhsa_border_ratio": x,
        "mhsa_foreground_key_ratio": x, "mhsa_register_mass": x, "mhsa_background_border_ratio": x,
        "mhca_entropy": [...],
        "gate_contrast": [...], "gate_channel_contrast": [...], "gate_mean_foreground": [...],
        "gate_mean_background": [...]}``
        (lists per head or per level, level 0 = full resolution, None at a level without MHCA or
        where the split has no such pixels; keys absent without that part)."""
        out: dict = {}
        n = max(1, self.images)
        if self.mhsa_entropy is not None:
            out["mhsa_head_entropy"] = [round(float(v) / n, 4) for v in self.mhsa_entropy]
            out["mhsa_query_agreement"] = [round(float(v) / n, 4) for v in self.mhsa_agreement]
            s = self.mhsa_sink
            out["mhsa_border_ratio"] = round(float(s[0] / s[1]), 4) if s[1] > 0 else None
            out["mhsa_foreground_key_ratio"] = round(float(s[2] / s[3]), 4) if s[3] > 0 else None
            out["mhsa_register_mass"] = round(float(s[4] / s[5]), 4) if s[5] > 0 else None
            out["mhsa_background_border_ratio"] = round(float(s[6] / s[7]), 4) if s[7] > 0 else None
        if self.gate_sums:
            fg = [float(s[0] / s[1]) if s[1] > 0 else None for s in self.gate_sums]
            bg = [float(s[2] / s[3]) if s[3] > 0 else None for s in self.gate_sums]
            out["gate_mean_foreground"] = [None if v is None else round(v, 4) for v in fg]
            out["gate_mean_background"] = [None if v is None else round(v, 4) for v in bg]
            out["gate_contrast"] = [None if f is None or b is None else round(f - b, 4) for f, b in zip(fg, bg)]
            out["gate_channel_contrast"] = [
                None if s[1] == 0 or s[3] == 0 else round(float((c[0] / s[1] - c[1] / s[3]).abs().mean()), 4)
                for s, c in zip(self.gate_sums, self.channel_sums)
            ]
            out["mhca_entropy"] = [round(float(e) / n, 4) for e in self.mhca_entropy]
            for key in (
                "gate_mean_foreground",
                "gate_mean_background",
                "gate_contrast",
                "gate_channel_contrast",
                "mhca_entropy",
            ):
                out[key] = by_level(out[key], self.gate_levels, self.depth)
        return out


def by_level(values: list, levels: list[int], depth: int = 0) -> list:
    """Values of the gated levels placed at their level's index: one entry per skip level of the
    model (``depth``; at least up to the deepest gated level), None at levels without MHCA."""
    out = [None] * max(depth, max(levels) + 1)
    for level, value in zip(levels, values):
        out[level] = value
    return out

"""MHCA gate figure: every skip level of one image, raw gate on a fixed 0–1 viridis scale.

Top row: the image, then the gate of each level (level 0 = full resolution; a gate with one value
per skip channel is averaged over its channels for the map). Bottom row: per level, histograms of
the gate values on foreground and on background pixels, titled with the gate contrast (mean on
foreground − mean on background, as ``attention_stats.AttentionStats`` reports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor

from segattn.figures.display import panel_aspect

PANEL_INCHES = 2.6
DPI = 100
BINS = np.linspace(0.0, 1.0, 41)


def gate_contrast(gate: Tensor, target: Tensor, ignore_index: int | None = None) -> float:
    """(C, h, w) gate of one image → mean on foreground − mean on background at the mask's size
    (NaN when either is empty)."""
    g = gate.detach().float().cpu().mean(0, keepdim=True)[None]
    g = F.interpolate(g, size=target.shape[-2:], mode="nearest")[0, 0]
    t = target.detach().cpu()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    fg, bg = (t > 0) & valid, (t == 0) & valid
    if not fg.any() or not bg.any():
        return float("nan")
    return float(g[fg].mean() - g[bg].mean())


def gate_figure(
    photo: np.ndarray,
    gates: Sequence[Tensor],
    target: Tensor,
    *,
    name: str,
    ignore_index: int | None = None,
    original_size: tuple[int, int] | None = None,
    levels: Sequence[int] | None = None,
) -> Figure:
    """``gates``: per gated level, the (C, h, w) gate of this image, values in [0, 1];
    ``levels``: their skip levels (default 0, 1, ...), for the titles."""
    if not gates:
        raise ValueError("gate_figure needs at least one gate level")
    levels = list(range(len(gates))) if levels is None else list(levels)
    if len(levels) != len(gates):
        raise ValueError(f"gate_figure: {len(gates)} gates but {len(levels)} levels {levels}")
    aspect = panel_aspect(original_size)
    h, w = photo.shape[:2]
    t = target.detach().cpu()
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    cols = len(gates) + 1
    fig = Figure(figsize=(cols * PANEL_INCHES + 0.8, PANEL_INCHES * aspect + PANEL_INCHES * 0.8 + 0.8), dpi=DPI)
    axes = fig.subplots(2, cols, gridspec_kw={"height_ratios": [aspect, 0.8]}, squeeze=False)
    axes[0, 0].imshow(photo, aspect=aspect)
    axes[0, 0].set_title("image", fontsize=10)
    axes[1, 0].axis("off")
    norm = Normalize(vmin=0.0, vmax=1.0)
    image = None
    for column, (level, gate) in enumerate(zip(levels, gates), start=1):
        g = gate.detach().float().cpu()
        if g.ndim != 3:
            raise ValueError(f"gate of level {level} must be (C, h, w), got {tuple(g.shape)}")
        ax = axes[0, column]
        image = ax.imshow(
            g.mean(0).numpy(),
            cmap="viridis",
            norm=norm,
            extent=(-0.5, w - 0.5, h - 0.5, -0.5),
            aspect=aspect,
            interpolation="nearest",
        )
        channels = "1 channel" if g.shape[0] == 1 else f"mean of {g.shape[0]} channels"
        ax.set_title(f"level {level}: {g.shape[-2]}×{g.shape[-1]}\n{channels}", fontsize=8)
        full = F.interpolate(g[None], size=t.shape[-2:], mode="nearest")[0]  # (C, H, W)
        fg = full[:, (t > 0) & valid].flatten().numpy()
        bg = full[:, (t == 0) & valid].flatten().numpy()
        hist = axes[1, column]
        for values, colour, label in ((bg, "#56B4E9", "background"), (fg, "#E69F00", "foreground")):
            if values.size:
                # One filled outline per class: what ``hist`` draws as 40 bar patches, far cheaper to build and draw.
                density, _ = np.histogram(values, bins=BINS, density=True)
                hist.stairs(density, BINS, fill=True, color=colour, alpha=0.6, label=label)
        contrast = gate_contrast(g, t, ignore_index)
        hist.set_title(f"contrast {contrast:+.3f}" if contrast == contrast else "contrast n/a", fontsize=9)
        hist.set_xlim(0, 1)
        hist.set_yticks([])
        hist.tick_params(labelsize=7)
        if column == 1:
            hist.legend(fontsize=7, frameon=False)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(image, ax=axes[0, 1:].tolist(), fraction=0.03, pad=0.02)
    bar.set_label("gate (0 = blocked, 1 = passed)")
    fig.suptitle(f"{name}: MHCA gates per skip level (0 = full resolution)", fontsize=11)
    return fig

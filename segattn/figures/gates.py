"""MHCA gate figure: every skip level of one image, in three aligned rows.

Top: the raw gate on a fixed 0–1 scale (a gate per skip channel is averaged over its channels).
Middle: the same gate minus its mean over the image, each level on its own symmetric scale (the
range printed in its title): where the gate passes more or less of the skip than on average,
which the 0–1 view hides when a gate varies by a few hundredths. Bottom, under each level: the
gate's distribution on foreground and on background pixels, titled with their contrast (mean on
foreground − mean on background, as ``segattn.metrics.attention`` reports it). 8 inches (800 px)
wide, so a TensorBoard card shows it at nearly full size.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor

from segattn.figures.colours import BACKGROUND, FOREGROUND
from segattn.figures.display import panel_aspect
from segattn.metrics.attention import gate_contrast

WIDTH_INCHES = 8.0
DPI = 100
BINS = np.linspace(0.0, 1.0, 41)
CAPTION = (
    "Middle: gate minus its mean (red passes more). Contrast: mean gate on foreground − on background. "
    "A 2×2 checkerboard comes from the model's transposed convolutions, not from the drawing."
)


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
    panel = (WIDTH_INCHES - 1.0) / cols
    height = 0.7 + 2 * panel * aspect + 1.6 + 1.4
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    grid = fig.add_gridspec(
        3,
        cols + 1,
        width_ratios=[1] * cols + [0.08],
        height_ratios=[aspect, aspect, 0.75],
        left=0.07,
        right=0.92,
        top=1 - 0.7 / height,
        bottom=0.95 / height,
        hspace=0.45,
        wspace=0.12,
    )
    axes = [[fig.add_subplot(grid[r, c]) for c in range(cols)] for r in range(3)]
    axes[0][0].imshow(
        photo, aspect="auto"
    )  # the cells have the photo's aspect: maps fill them, aligned with the histograms
    axes[0][0].set_title("image", fontsize=10)
    axes[1][0].axis("off")
    axes[2][0].axis("off")
    norm = Normalize(vmin=0.0, vmax=1.0)
    image = None
    for column, (level, gate) in enumerate(zip(levels, gates), start=1):
        g = gate.detach().float().cpu()
        if g.ndim != 3:
            raise ValueError(f"gate of level {level} must be (C, h, w), got {tuple(g.shape)}")
        mean_map = g.mean(0).numpy()
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        image = axes[0][column].imshow(
            mean_map, cmap="viridis", norm=norm, extent=extent, aspect="auto", interpolation="nearest"
        )
        channels = "1 channel" if g.shape[0] == 1 else f"{g.shape[0]} channels"
        axes[0][column].set_title(f"level {level} ({g.shape[-2]}×{g.shape[-1]})\n{channels}", fontsize=10)
        deviation = mean_map - mean_map.mean()
        spread = float(np.abs(deviation).max()) or 1e-6
        axes[1][column].imshow(
            deviation, cmap="RdGy_r", vmin=-spread, vmax=spread, extent=extent, aspect="auto", interpolation="nearest"
        )
        axes[1][column].set_title(f"mean {mean_map.mean():.2f}\n±{spread:.3f}", fontsize=10)
        full = F.interpolate(g[None], size=t.shape[-2:], mode="nearest")[0]  # (C, H, W)
        fg = full[:, (t > 0) & valid].flatten().numpy()
        bg = full[:, (t == 0) & valid].flatten().numpy()
        hist = axes[2][column]
        for values, colour, label in ((bg, BACKGROUND, "background"), (fg, FOREGROUND, "foreground")):
            if values.size:
                density, _ = np.histogram(values, bins=BINS, density=True)
                hist.stairs(density, BINS, fill=False, color=colour, linewidth=2, label=label)
        contrast = gate_contrast(g, t, ignore_index)
        hist.set_title(f"contrast {contrast:+.3f}" if contrast == contrast else "contrast n/a", fontsize=10)
        hist.set_xlim(0, 1)
        hist.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
        first, _, last = hist.get_xticklabels()
        first.set_horizontalalignment("left")  # neighbouring panels' "1" and "0" must not read as "10"
        last.set_horizontalalignment("right")
        hist.set_yticks([])
        hist.tick_params(labelsize=10)
        hist.set_xlabel("gate", fontsize=10)
    axes[2][1].set_ylabel("density", fontsize=10)
    handles, labels = axes[2][1].get_legend_handles_labels()
    axes[1][0].legend(
        handles,
        labels,
        title="histograms",
        fontsize=10,
        title_fontsize=10,
        frameon=False,
        loc="center",
        handlelength=1.2,
    )
    for row in axes[:2]:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[0, cols], label="<colorbar>"))
    bar.set_label("gate", fontsize=10)
    bar.ax.tick_params(labelsize=10)
    relative = fig.colorbar(ScalarMappable(Normalize(-1, 1), "RdGy_r"), cax=fig.add_subplot(grid[1, cols]))
    relative.set_ticks([-1, 0, 1], labels=["less", "mean", "more"], fontsize=10)
    fig.text(0.5, 0.06 / height, "\n".join(textwrap.wrap(CAPTION, 100)), ha="center", va="bottom", fontsize=10)
    fig.suptitle(f"{name}: MHCA gates per skip level (0 = full resolution)", fontsize=12, y=1 - 0.08 / height, va="top")
    return fig

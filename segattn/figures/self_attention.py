"""MHSA figure: one row per head, one column per query, on a fixed log-probability scale.

Each panel is the attention distribution of one query over the bottleneck's keys. The colour
scale is the same for every head, query and epoch (from 1/(10 N) to 1, logarithmic), and the
colour bar marks the uniform value 1/N: a head that averages everything is flat at that mark, a
head that looks at one key shows one bright cell. Averaging the heads would hide exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import Tensor

from segattn.figures.display import panel_aspect
from segattn.training.attention_stats import head_entropy, query_agreement

PANEL_INCHES = 1.9
DPI = 100
QUERY_COLOURS = {"fg": "#E69F00", "bg": "#56B4E9"}  # Okabe-Ito orange (foreground), sky blue (background)


def probability_norm(num_keys: int) -> LogNorm:
    """The fixed scale: 1/(10 N) .. 1, so the uniform value 1/N sits at a fixed place on the bar."""
    if num_keys < 1:
        raise ValueError(f"num_keys must be >= 1, got {num_keys}")
    return LogNorm(vmin=0.1 / num_keys, vmax=1.0, clip=True)


def self_attention_figure(
    photo: np.ndarray,
    weights: Tensor,
    grid: tuple[int, int],
    queries: Sequence[tuple[int, int, str]],
    *,
    name: str,
    target: Tensor | None = None,
    per_head: bool = True,
    original_size: tuple[int, int] | None = None,
) -> Figure:
    """``weights``: (heads, N, N) attention of one image; ``queries``: (row, col, "fg"|"bg") cells of
    ``grid``. Row titles give each head's entropy / log N and query agreement (attention_stats)."""
    if weights.ndim != 3 or weights.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f"weights must be (heads, N, N) with N = {grid[0]}*{grid[1]}, got {tuple(weights.shape)}")
    if not queries:
        raise ValueError("self_attention_figure needs at least one query cell")
    gh, gw = grid
    h, w = photo.shape[:2]
    w_cpu = weights.detach().float().cpu()
    entropy = head_entropy(w_cpu[None])[0].tolist()
    agreement = query_agreement(w_cpu[None])[0].tolist()
    rows = [(f"head {k}", w_cpu[k], f"H/log N {entropy[k]:.2f}\nagree {agreement[k]:.2f}") for k in range(len(w_cpu))]
    if not per_head:
        rows = [("head mean", w_cpu.mean(0), f"H/log N {np.mean(entropy):.2f} (mean)")]
    aspect = panel_aspect(original_size)
    norm = probability_norm(gh * gw)
    cols = len(queries) + 1
    fig = Figure(figsize=(cols * PANEL_INCHES + 2.2, len(rows) * PANEL_INCHES * aspect + 0.9), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(len(rows), cols, squeeze=False))
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    centres = [((c + 0.5) * w / gw - 0.5, (r + 0.5) * h / gh - 0.5) for r, c, _ in queries]
    image = None
    outline = None  # the ground truth's outline, traced once and drawn on every panel
    for i, (label, head, stats) in enumerate(rows):
        photo_ax = axes[i, 0]
        if i == 0:
            photo_ax.imshow(photo, aspect=aspect)
            for q, ((x, y), (_, _, kind)) in enumerate(zip(centres, queries), start=1):
                photo_ax.plot(x, y, marker="o", ms=9, mfc=QUERY_COLOURS[kind], mec="black")
                photo_ax.annotate(str(q), (x, y), color="black", fontsize=7, ha="center", va="center")
            photo_ax.set_title("queries (orange fg, blue bg)", fontsize=8)
        else:
            photo_ax.axis("off")
        photo_ax.text(-0.08, 0.5, f"{label}\n{stats}", transform=photo_ax.transAxes, ha="right", va="center", fontsize=8)
        for j, ((r, c, kind), (x, y)) in enumerate(zip(queries, centres), start=1):
            ax = axes[i, j]
            values = head[r * gw + c].reshape(gh, gw).numpy()
            image = ax.imshow(values, cmap="magma", norm=norm, extent=extent, aspect=aspect, interpolation="nearest")
            if target is not None and (target > 0).any():
                if outline is None:
                    outline = ax.contour((target.detach().cpu().numpy() > 0).astype(float), levels=[0.5], colors="white", linewidths=0.7)
                else:  # the same lines without tracing the mask again (contouring is most of a panel's cost)
                    ax.add_collection(LineCollection(outline.allsegs[0], colors="white", linewidths=0.7), autolim=False)
            ax.plot(x, y, marker="o", ms=7, mfc=QUERY_COLOURS[kind], mec="white")
            if i == 0:
                ax.set_title(f"query {j} ({kind})", fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.15, right=0.80, top=1 - 0.6 / fig.get_figheight(), bottom=0.02, wspace=0.05, hspace=0.08)
    bar = fig.colorbar(image, cax=fig.add_axes((0.82, 0.2, 0.018, 0.6), label="<colorbar>"))  # own axes: room for the tick labels
    uniform = 1.0 / (gh * gw)
    bar.ax.axhline(uniform, color="cyan", linewidth=2)
    bar.set_ticks([norm.vmin, uniform, 1.0])
    bar.set_ticklabels([f"{norm.vmin:.1e}", f"1/N = {uniform:.3g}", "1"])
    bar.set_label("attention weight (log scale)")
    fig.suptitle(f"{name}: MHSA over {gh}×{gw} = {gh * gw} keys, one row per head", fontsize=11)
    return fig

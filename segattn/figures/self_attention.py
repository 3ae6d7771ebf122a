"""MHSA figure: one row per query cell, one column per head, on a fixed log-probability scale.

Each panel is the attention distribution of one query over the bottleneck's cells. The colour
scale is the same for every head, query and epoch (from 1/(10 N) to 1, logarithmic), and the
colour bar marks the uniform value 1/N: a head that averages everything is flat at that mark, a
head that looks at one key shows one bright cell. Averaging the heads would hide exactly that.
The first column shows the photo with the row's query cell; the figure is 8 inches (800 px)
wide whatever the number of heads, so a TensorBoard card shows it at nearly full size.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import Tensor

from segattn.figures.colours import BACKGROUND, FOREGROUND
from segattn.figures.display import panel_aspect
from segattn.metrics.attention import head_entropy, query_agreement

WIDTH_INCHES = 8.0
DPI = 100
QUERY_COLOURS = {"fg": FOREGROUND, "bg": BACKGROUND}
CAPTION = (
    "Rows: query cells (orange foreground, blue background). H: entropy / log N (1 = uniform, 0 = one cell). "
    "a: query agreement, 1 = every query looks at the same cell. reg: share of the weight on the registers."
)


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
    """``weights``: (heads, N, N + R) attention of one image (R register tokens, after the N cells);
    ``queries``: (row, col, "fg"|"bg") cells of ``grid``. Column titles give each head's entropy /
    log N and query agreement over all its queries (``segattn.metrics.attention``) and, with
    registers, the weight the shown queries put on them; the panels show the weight on the cells.

    All panels are images placed on one set of axes (the mosaic), not one axes each: matplotlib
    spends most of a figure's time creating and drawing axes, and 8 heads × 3 queries would be 27.
    """
    n = grid[0] * grid[1]
    if weights.ndim != 3 or weights.shape[1] != n or weights.shape[-1] < n:
        raise ValueError(
            f"weights must be (heads, N, N + registers) with N = {grid[0]}*{grid[1]}, got {tuple(weights.shape)}"
        )
    if not queries:
        raise ValueError("self_attention_figure needs at least one query cell")
    gh, gw = grid
    h, w = photo.shape[:2]
    w_cpu = weights.detach().float().cpu()
    entropy = head_entropy(w_cpu[None])[0].tolist()
    agreement = query_agreement(w_cpu[None])[0].tolist()
    shown = [r * gw + c for r, c, _ in queries]
    registers = weights.shape[-1] > n
    register_mass = w_cpu[:, shown, n:].sum(-1).mean(-1).tolist()  # per head, over the shown queries
    if per_head:
        columns = [
            (
                w_cpu[k],
                f"head {k}\nH {entropy[k]:.2f}\na {agreement[k]:.2f}"
                + (f"\nreg {register_mass[k]:.0%}" if registers else ""),
            )
            for k in range(len(w_cpu))
        ]
    else:
        mean_reg = f"\nreg {np.mean(register_mass):.0%}" if registers else ""
        columns = [(w_cpu.mean(0), f"head mean\nH {np.mean(entropy):.2f}\na {np.mean(agreement):.2f}{mean_reg}")]
    aspect = panel_aspect(original_size)
    cols, rows = len(columns) + 1, len(queries)
    left, right_margin, gap = 0.1, 1.0, 0.06  # inches; the colour bar lives in the right margin
    panel = (WIDTH_INCHES - left - right_margin) / (cols + (cols - 1) * gap)
    header, footer = 0.95 + 0.17 * registers, 0.75
    height = header + rows * panel * aspect * (1 + gap) + footer
    fig = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    ax = fig.add_axes(
        (
            left / WIDTH_INCHES,
            footer / height,
            (WIDTH_INCHES - left - right_margin) / WIDTH_INCHES,
            (height - header - footer) / height,
        )
    )
    norm = probability_norm(n)
    step_x, step_y = w * (1 + gap), h * (1 + gap)
    image = None
    for i, (r, c, kind) in enumerate(queries):
        y0 = i * step_y
        x, y = (c + 0.5) * w / gw - 0.5, (r + 0.5) * h / gh - 0.5
        ax.imshow(photo, extent=(-0.5, w - 0.5, y0 + h - 0.5, y0 - 0.5), interpolation="nearest")
        for j, (head, _) in enumerate(columns, start=1):
            x0 = j * step_x
            values = head[r * gw + c, :n].reshape(gh, gw).numpy()
            image = ax.imshow(
                values,
                cmap="magma",
                norm=norm,
                interpolation="nearest",
                extent=(x0 - 0.5, x0 + w - 0.5, y0 + h - 0.5, y0 - 0.5),
            )
            ax.scatter(
                [x0 + x],
                [y0 + y],
                s=40,
                c=QUERY_COLOURS[kind],
                edgecolors="white",
                linewidths=0.8,
                zorder=3,
                clip_on=False,
            )
        ax.scatter(
            [x], [y0 + y], s=110, c=QUERY_COLOURS[kind], edgecolors="black", linewidths=1.0, zorder=3, clip_on=False
        )
        ax.annotate(
            str(i + 1),
            (x, y0 + y),
            color="black",
            fontsize=9,
            ha="center",
            va="center",
            zorder=4,
            annotation_clip=False,
        )
    if target is not None and (target > 0).any():
        # The ground truth's outline on every attention panel: traced once, copied to the others.
        traced = ax.contour(
            (target.detach().cpu().numpy() > 0).astype(float), levels=[0.5], colors="white", linewidths=0.6
        )
        lines = traced.allsegs[0]
        offsets = [(j * step_x, i * step_y) for i in range(rows) for j in range(1, cols)]
        ax.add_collection(
            LineCollection([line + offset for offset in offsets for line in lines], colors="white", linewidths=0.6),
            autolim=False,
        )
        traced.remove()
    for j, (_, title) in enumerate([(None, "query"), *columns]):
        ax.text(j * step_x + w / 2 - 0.5, -0.5 - 0.04 * h, title, ha="center", va="bottom", fontsize=10)
    ax.set_xlim(-0.5, cols * step_x - gap * w - 0.5)
    ax.set_ylim(rows * step_y - gap * h - 0.5, -0.5)
    ax.set_aspect(aspect)
    ax.axis("off")
    bar_axes = fig.add_axes(
        (
            1 - 0.78 / WIDTH_INCHES,
            footer / height + 0.1 * (1 - (header + footer) / height),
            0.14 / WIDTH_INCHES,
            0.8 * (height - header - footer) / height,
        ),
        label="<colorbar>",
    )
    bar = fig.colorbar(image, cax=bar_axes)
    uniform = 1.0 / n
    bar.ax.axhline(uniform, color="white", linewidth=2)
    bar.set_ticks([norm.vmin, uniform, 1.0])
    bar.set_ticklabels([f"{norm.vmin:.0e}", "1/N", "1"])
    bar.ax.tick_params(labelsize=10)
    fig.text(0.5, 0.08 / height, "\n".join(textwrap.wrap(CAPTION, 100)), ha="center", va="bottom", fontsize=10)
    fig.suptitle(f"{name}: MHSA over the {gh}×{gw} = {n} bottleneck cells", fontsize=12, y=1 - 0.06 / height, va="top")
    return fig

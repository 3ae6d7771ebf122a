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
from segattn.metrics.attention import head_entropy, query_agreement

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
    """``weights``: (heads, N, N + R) attention of one image (R register tokens, after the N cells);
    ``queries``: (row, col, "fg"|"bg") cells of ``grid``. Row titles give each head's entropy /
    log N, query agreement (attention_stats) and, with registers, the weight the shown queries
    put on them; the panels show the weight on the cells.

    The heads × queries panels are images placed side by side on one set of axes (the mosaic),
    not one axes each: matplotlib spends most of a figure's time creating and drawing axes (their
    ticks and spines), and with 8 heads the figure would have 33 of them.
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
    register_mass = w_cpu[:, shown, n:].sum(-1).mean(-1).tolist()  # per head, over the shown queries
    reg = [f"\nregisters {m:.0%}" if weights.shape[-1] > n else "" for m in register_mass]
    rows = [
        (f"head {k}", w_cpu[k], f"H/log N {entropy[k]:.2f}\nagree {agreement[k]:.2f}{reg[k]}")
        for k in range(len(w_cpu))
    ]
    if not per_head:
        mean_reg = f"\nregisters {np.mean(register_mass):.0%}" if weights.shape[-1] > n else ""
        rows = [("head mean", w_cpu.mean(0), f"H/log N {np.mean(entropy):.2f} (mean){mean_reg}")]
    aspect = panel_aspect(original_size)
    norm = probability_norm(gh * gw)
    cols = len(queries) + 1
    fig = Figure(figsize=(cols * PANEL_INCHES + 2.2, len(rows) * PANEL_INCHES * aspect + 0.9), dpi=DPI)
    left, right, bottom, top = 0.15, 0.80, 0.02, 1 - 0.6 / fig.get_figheight()
    cell_w, cell_h = (right - left) / cols, (top - bottom) / len(rows)
    centres = [((c + 0.5) * w / gw - 0.5, (r + 0.5) * h / gh - 0.5) for r, c, _ in queries]

    photo_ax = fig.add_axes((left, top - cell_h, 0.95 * cell_w, 0.92 * cell_h), anchor="NE")
    photo_ax.imshow(photo, aspect=aspect)
    for q, ((x, y), (_, _, kind)) in enumerate(zip(centres, queries), start=1):
        photo_ax.plot(x, y, marker="o", ms=9, mfc=QUERY_COLOURS[kind], mec="black")
        photo_ax.annotate(str(q), (x, y), color="black", fontsize=7, ha="center", va="center")
    photo_ax.set_title("queries (orange fg, blue bg)", fontsize=8)
    photo_ax.set_xticks([])
    photo_ax.set_yticks([])

    # Panel (i, j) covers [x0 - 0.5, x0 + w - 0.5] × [y0 - 0.5, y0 + h - 0.5] in the photo's pixels.
    # Rows spread over the height the figure gives them, as separate axes would (at least 8 % gaps).
    gap_x = 0.05 * w
    box_w, box_h = fig.get_figwidth() * (right - left - cell_w), fig.get_figheight() * (top - bottom)
    data_h = box_h / (box_w / (len(queries) * (w + gap_x) - gap_x)) / aspect  # the box's height in data units
    gap_y = max(0.08 * h, (data_h - len(rows) * h) / (len(rows) - 1)) if len(rows) > 1 else 0.08 * h
    ax = fig.add_axes((left + cell_w, bottom, right - left - cell_w, top - bottom), anchor="NW")
    offsets = [(j * (w + gap_x), i * (h + gap_y)) for i in range(len(rows)) for j in range(len(queries))]
    image = None
    for i, (label, head, stats) in enumerate(rows):
        for j, (r, c, kind) in enumerate(queries):
            x0, y0 = offsets[i * len(queries) + j]
            values = head[r * gw + c, :n].reshape(gh, gw).numpy()
            image = ax.imshow(
                values,
                cmap="magma",
                norm=norm,
                extent=(x0 - 0.5, x0 + w - 0.5, y0 + h - 0.5, y0 - 0.5),
                interpolation="nearest",
            )
        # Left of the photo column, level with the row (x in figure fraction, y in the mosaic's data).
        ax.annotate(
            f"{label}\n{stats}",
            (left - 0.005, i * (h + gap_y) + h / 2),
            xycoords=("figure fraction", "data"),
            ha="right",
            va="center",
            fontsize=8,
            annotation_clip=False,
        )
    for j, (_, _, kind) in enumerate(queries):
        ax.text(
            j * (w + gap_x) + w / 2 - 0.5,
            -0.5 - 0.03 * h,
            f"query {j + 1} ({kind})",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    if target is not None and (target > 0).any():
        # The ground truth's outline, traced once on the first panel (at the origin), copied to the others.
        outline = ax.contour(
            (target.detach().cpu().numpy() > 0).astype(float), levels=[0.5], colors="white", linewidths=0.7
        )
        lines = outline.allsegs[0]
        ax.add_collection(
            LineCollection([line + offset for offset in offsets[1:] for line in lines], colors="white", linewidths=0.7),
            autolim=False,
        )
    # Each panel's own query cell (panel (i, j) shows query j).
    marks = np.array(
        [(centres[k % len(queries)][0] + x0, centres[k % len(queries)][1] + y0) for k, (x0, y0) in enumerate(offsets)]
    )
    kinds = [kind for _ in rows for _, _, kind in queries]
    ax.scatter(marks[:, 0], marks[:, 1], s=7**2, c=[QUERY_COLOURS[k] for k in kinds], edgecolors="white", zorder=3)
    ax.set_xlim(-0.5, len(queries) * (w + gap_x) - gap_x - 0.5)
    ax.set_ylim(len(rows) * (h + gap_y) - gap_y - 0.5, -0.5)
    ax.set_aspect(aspect)
    ax.axis("off")
    bar = fig.colorbar(
        image, cax=fig.add_axes((0.82, 0.2, 0.018, 0.6), label="<colorbar>")
    )  # own axes: room for the tick labels
    uniform = 1.0 / (gh * gw)
    bar.ax.axhline(uniform, color="cyan", linewidth=2)
    bar.set_ticks([norm.vmin, uniform, 1.0])
    bar.set_ticklabels([f"{norm.vmin:.1e}", f"1/N = {uniform:.3g}", "1"])
    bar.set_label("attention weight (log scale)")
    # A fixed distance from the top (in inches), clear of the column titles however tall the figure.
    fig.suptitle(
        f"{name}: MHSA over {gh}×{gw} = {gh * gw} keys, one row per head",
        fontsize=11,
        y=1 - 0.08 / fig.get_figheight(),
        va="top",
    )
    return fig

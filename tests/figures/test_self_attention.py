"""segattn.figures.self_attention: the MHSA figure, a row per head on a fixed scale."""

from __future__ import annotations

import numpy as np
import pytest

from segattn.figures import (
    choose_queries,
    denormalize,
    self_attention_figure,
)
from segattn.figures.self_attention import probability_norm
from tests.helpers.figures import has_colour_bar, pixels


def test_self_attention_figure_has_a_row_per_head_and_a_fixed_scale_marking_one_over_n(model_outputs):
    image, mask, _, maps = model_outputs
    grid = maps.self_attention_size
    queries = choose_queries(mask, grid, 3)
    fig = self_attention_figure(denormalize(image, None), maps.self_attention[0], grid, queries, name="x", target=mask)
    heads, n = maps.self_attention.shape[1], grid[0] * grid[1]
    heatmaps = [
        im for ax in fig.axes if ax.get_label() != "<colorbar>" for im in ax.images if im.get_cmap().name == "magma"
    ]
    assert len(heatmaps) == heads * len(queries)  # one panel per head and query
    assert len(fig.axes) == 3  # photo, the panels' mosaic, colour bar: not one axes per panel (slow to draw)
    row_labels = sorted(
        t.get_text().split("\n")[0] for ax in fig.axes for t in ax.texts if t.get_text().startswith("head")
    )
    assert row_labels == [f"head {k}" for k in range(heads)]
    # Panel (head k, query j) shows query j's row of head k's weights.
    r, c, _ = queries[-1]
    last = np.asarray(heatmaps[-1].get_array())
    assert np.allclose(last, maps.self_attention[0, -1, r * grid[1] + c].reshape(grid).numpy())
    assert has_colour_bar(fig)
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert any(f"1/N = {1 / n:.3g}" in t.get_text() for t in bar.get_yticklabels())
    assert all(
        (im.norm.vmin, im.norm.vmax) == (probability_norm(n).vmin, 1.0) for im in heatmaps
    )  # the same scale every epoch
    averaged = self_attention_figure(
        denormalize(image, None), maps.self_attention[0], grid, queries, name="x", per_head=False
    )
    assert pixels(averaged)[1] < pixels(fig)[1]
    with pytest.raises(ValueError, match="weights must be"):
        self_attention_figure(denormalize(image, None), maps.self_attention[0], (3, 3), queries, name="x")

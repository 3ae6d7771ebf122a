"""segattn.figures.self_attention: the MHSA figure, a row per query and a column per head on a fixed scale."""

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


def test_self_attention_figure_has_a_column_per_head_and_a_fixed_scale_marking_one_over_n(model_outputs):
    image, mask, _, maps = model_outputs
    grid = maps.self_attention_size
    queries = choose_queries(mask, grid, 3)
    fig = self_attention_figure(denormalize(image, None), maps.self_attention[0], grid, queries, name="x", target=mask)
    heads, n = maps.self_attention.shape[1], grid[0] * grid[1]
    heatmaps = [
        im for ax in fig.axes if ax.get_label() != "<colorbar>" for im in ax.images if im.get_cmap().name == "magma"
    ]
    assert len(heatmaps) == heads * len(queries)  # one panel per head and query
    assert len(fig.axes) == 2  # the panels' mosaic (photos included) and the colour bar: not one axes per panel
    column_titles = [
        t.get_text().split("\n")[0] for ax in fig.axes for t in ax.texts if t.get_text().startswith("head")
    ]
    assert column_titles == [f"head {k}" for k in range(heads)]
    width, height = pixels(fig)
    assert 700 <= width <= 820 and height <= 1.5 * width  # fits a TensorBoard card
    # Panel (head k, query j) shows query j's row of head k's weights.
    r, c, _ = queries[-1]
    last = np.asarray(heatmaps[-1].get_array())
    assert np.allclose(last, maps.self_attention[0, -1, r * grid[1] + c].reshape(grid).numpy())
    assert has_colour_bar(fig)
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    assert any(t.get_text() == "1/N" for t in bar.get_yticklabels())
    assert 1 / n == pytest.approx(sorted(bar.get_yticks())[1])
    assert all(
        (im.norm.vmin, im.norm.vmax) == (probability_norm(n).vmin, 1.0) for im in heatmaps
    )  # the same scale every epoch
    averaged = self_attention_figure(
        denormalize(image, None), maps.self_attention[0], grid, queries, name="x", per_head=False
    )
    assert pixels(averaged)[1] > pixels(fig)[1]  # one wide column per query: taller panels, same width
    with_registers = maps.self_attention[0].new_full((heads, n, n + 2), 1.0 / (n + 2))
    registered = self_attention_figure(denormalize(image, None), with_registers, grid, queries, name="x")
    assert any("reg " in t.get_text() for ax in registered.axes for t in ax.texts)
    with pytest.raises(ValueError, match="weights must be"):
        self_attention_figure(denormalize(image, None), maps.self_attention[0], (3, 3), queries, name="x")

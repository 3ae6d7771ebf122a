"""segattn.figures.gates: the MHCA gate figure, every level on [0, 1] with histograms."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import StepPatch

from segattn.figures import (
    denormalize,
    gate_figure,
)
from tests.helpers.figures import has_colour_bar, pixels


def test_gate_figure_shows_every_level_on_zero_to_one_its_deviation_and_histograms(model_outputs):
    image, mask, _, maps = model_outputs
    fig = gate_figure(denormalize(image, None), [g[0] for g in maps.gates], mask, name="x")
    gate_maps = [ax for ax in fig.axes if ax.get_title().startswith("level")]
    assert all(ax.images[0].get_cmap().name == "viridis" for ax in gate_maps)
    assert len(gate_maps) == len(maps.gates) >= 2
    assert all((ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (0.0, 1.0) for ax in gate_maps)
    assert has_colour_bar(fig)
    histograms = [ax for ax in fig.axes if ax.get_title().startswith("contrast")]
    assert len(histograms) == len(maps.gates)
    deviations = [ax for ax in fig.axes if ax.get_title().startswith("mean ")]
    assert len(deviations) == len(maps.gates)
    for ax in deviations:  # each level on its own symmetric scale, the range in the title
        vmin, vmax = ax.images[0].norm.vmin, ax.images[0].norm.vmax
        assert vmin == -vmax and f"±{vmax:.3f}" in ax.get_title()
    for ax, level in zip(histograms, gate_maps):  # aligned under its level's map
        assert ax.get_position().x0 == pytest.approx(level.get_position().x0)
        assert ax.get_xlabel() == "gate"
    for ax in histograms:  # one density outline per class present (foreground and background)
        steps = [p for p in ax.patches if isinstance(p, StepPatch)]
        assert sorted(p.get_label() for p in steps) == ["background", "foreground"]
        for p in steps:
            values, edges, _ = p.get_data()
            assert np.sum(values * np.diff(edges)) == pytest.approx(1.0)
    width, height = pixels(fig)
    assert 700 <= width <= 820 and height <= 1.5 * width
    # A model without MHCA at some levels: the panels are titled by their real level.
    later = gate_figure(
        denormalize(image, None), [g[0] for g in maps.gates[1:]], mask, name="x", levels=maps.gate_levels[1:]
    )
    assert [ax.get_title().split(" (")[0] for ax in later.axes if ax.get_title().startswith("level")] == [
        f"level {i}" for i in maps.gate_levels[1:]
    ]
    with pytest.raises(ValueError, match="levels"):
        gate_figure(denormalize(image, None), [g[0] for g in maps.gates], mask, name="x", levels=[1])

"""Measuring matplotlib figures as TensorBoard would log them."""

from __future__ import annotations


def pixels(fig) -> tuple[int, int]:
    """(width, height) in pixels once drawn, as TensorBoard's add_figure would log it."""
    fig.canvas.draw()
    return fig.canvas.get_width_height()


def has_colour_bar(fig) -> bool:
    return any(ax.get_label() == "<colorbar>" for ax in fig.axes)

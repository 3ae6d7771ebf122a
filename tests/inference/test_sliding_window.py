"""segattn.inference.sliding_window: window positions and Gaussian-weighted windows against brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from segattn.inference import (
    gaussian_importance,
    sliding_window_probabilities,
    window_starts,
)
from segattn.models import UNetAttention


@pytest.mark.parametrize(
    "length,window,overlap", [(100, 32, 0.5), (64, 64, 0.5), (20, 32, 0.5), (97, 16, 0.25), (300, 128, 0.0)]
)
def test_window_starts_cover_the_image_with_the_overlap_asked(length, window, overlap):
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and starts[-1] == max(0, length - window)
    covered = set(itertools.chain.from_iterable(range(s, s + window) for s in starts))
    assert covered >= set(range(length))
    for a, b in zip(starts, starts[1:]):
        assert b - a <= window * (1 - overlap) + 1e-9


def position_dependent_net(x: torch.Tensor) -> torch.Tensor:
    """A 'network' whose output depends on where a pixel sits in its window (like a real one at
    window borders), so the windowing and the weighting are visible in the result."""
    _, _, h, w = x.shape
    ramp = torch.linspace(-1, 1, w)[None, None, None, :] * torch.linspace(1, 2, h)[None, None, :, None]
    return torch.cat([x[:, :1] * 2 + ramp, -x[:, :1] - ramp, x[:, 1:2]], dim=1)


def test_sliding_window_matches_a_brute_force_reference():
    torch.manual_seed(0)
    image = torch.randn(2, 2, 45, 70)
    window, overlap = 32, 0.5
    fast = sliding_window_probabilities(position_dependent_net, image, window, 3, overlap, batch_size=3)
    # Brute force: every pixel averages the softmax of every window covering it, weighted by the
    # Gaussian value at its position in that window.
    g = gaussian_importance(window, window)
    num, den = torch.zeros(2, 3, 45, 70), torch.zeros(45, 70)
    for y in window_starts(45, window, overlap):
        for x in window_starts(70, window, overlap):
            p = position_dependent_net(image[:, :, y : y + window, x : x + window]).softmax(1)
            for i in range(window):
                for j in range(window):
                    num[:, :, y + i, x + j] += g[i, j] * p[:, :, i, j]
                    den[y + i, x + j] += g[i, j]
    torch.testing.assert_close(fast, num / den, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.sum(1), torch.ones(2, 45, 70))
    # Batching the windows does not change anything.
    torch.testing.assert_close(
        sliding_window_probabilities(position_dependent_net, image, window, 3, overlap, batch_size=1), fast
    )


def test_pointwise_network_gives_the_whole_image_softmax_whatever_the_windows():
    conv = torch.nn.Conv2d(3, 4, 1)
    image = torch.randn(1, 3, 50, 77)
    with torch.no_grad():
        direct = conv(image).softmax(1)
        for window, overlap in [(16, 0.5), (32, 0.25), (64, 0.0)]:
            torch.testing.assert_close(
                sliding_window_probabilities(conv, image, window, 4, overlap), direct, rtol=1e-5, atol=1e-6
            )


def test_small_images_are_padded_to_the_window_and_to_the_model_multiple():
    model = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    image = torch.randn(1, 3, 21, 30)  # smaller than the window, not a multiple of 4
    with torch.no_grad():
        probs = sliding_window_probabilities(model, image, 32, 2, 0.5, multiple=4)
    assert probs.shape == (1, 2, 21, 30) and torch.isfinite(probs).all()
    with pytest.raises(ValueError, match=r"inference.window: got 30x30; the model needs multiples of 4"):
        sliding_window_probabilities(model, image, 30, 2, 0.5, multiple=4)

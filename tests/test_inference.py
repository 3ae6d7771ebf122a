"""Sliding-window inference and test-time flips, against brute-force references."""

from __future__ import annotations

import itertools

import pytest
import torch

from segattn.inference import (
    InferenceSettings,
    gaussian_importance,
    predict_probabilities,
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


def test_flips_average_equals_the_manual_average():
    model = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    image = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        tta = predict_probabilities(model, image, 2, InferenceSettings(tta=True), window=32, multiple=4)
        manual = (
            sum(
                model(image.flip(d)).softmax(1).flip(d) if d else model(image).softmax(1)
                for d in [(), (-1,), (-2,), (-2, -1)]
            )
            / 4
        )
        torch.testing.assert_close(tta, manual, rtol=1e-5, atol=1e-6)
        plain = predict_probabilities(model, image, 2, InferenceSettings(), window=32, multiple=4)
        torch.testing.assert_close(plain, model(image).softmax(1))
        window = predict_probabilities(
            model, image, 2, InferenceSettings(mode="sliding_window", tta=True), window=16, multiple=4
        )
        horizontal = predict_probabilities(
            model, image, 2, InferenceSettings(tta=True, tta_vertical=False), window=32, multiple=4
        )
        torch.testing.assert_close(
            horizontal, (model(image).softmax(1) + model(image.flip(-1)).softmax(1).flip(-1)) / 2, rtol=1e-5, atol=1e-6
        )
    assert window.shape == (2, 2, 32, 48)


def test_test_time_flips_follow_the_training_flips_unless_set(tiny_isbi):
    from segattn.cli.inference_setup import prepare_inference
    from segattn.data import ISBI2012DataModule
    from segattn.training.module import SegmentationModule

    net = dict(in_channels=1, depth=2, base_channels=8, heads=2)
    for trained_vertical, given, expected in [
        (False, None, False),
        (True, None, True),
        (False, True, True),
        (True, False, False),
    ]:
        module = SegmentationModule(net=net, class_names=["cell", "membrane"])
        prepare_inference(
            module,
            ISBI2012DataModule(root=str(tiny_isbi), image_size=16, vertical_flip=trained_vertical),
            {"tta": True, "tta_vertical": given},
        )
        assert module.inference.tta_vertical is expected


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(mode="tiles"), r"inference.mode: got 'tiles'; allowed: resize, sliding_window"),
        (dict(overlap=1.0), r"inference.overlap: got 1.0; expected a fraction in \[0, 1\)"),
        (dict(batch_size=0), r"inference.batch_size: got 0"),
        (dict(window=-3), r"inference.window: got -3"),
        (dict(tta_vertical="yes"), r"inference.tta_vertical: got 'yes'; expected true, false or null"),
    ],
)
def test_bad_settings_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        InferenceSettings(**kwargs)

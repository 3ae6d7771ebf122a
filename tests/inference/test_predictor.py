"""segattn.inference.predictor: test-time flips and the inference settings."""

from __future__ import annotations

import pytest
import torch

from segattn.inference import (
    InferenceSettings,
    predict_probabilities,
)
from segattn.models import UNetAttention


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


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(mode="tiles"), r"inference.mode: got 'tiles'; allowed: resize, sliding_window"),
        (dict(overlap=1.0), r"inference.overlap: got 1.0; expected a fraction in \[0, 1\)"),
        (dict(batch_size=0), r"inference.batch_size: got 0"),
        (dict(window=-3), r"inference.window: got -3"),
        (dict(batch_size=True), r"inference.batch_size: got True; expected an integer >= 1"),
        (dict(window=True), r"inference.window: got True; expected a positive integer or null"),
        (dict(max_pixels=True), r"inference.max_pixels: got True; expected a positive integer or null"),
        (dict(tta_vertical="yes"), r"inference.tta_vertical: got 'yes'; expected true, false or null"),
    ],
)
def test_bad_settings_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        InferenceSettings(**kwargs)

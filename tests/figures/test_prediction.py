"""segattn.figures.prediction: the prediction figure and the per-image Dice it shows."""

from __future__ import annotations

import math

import pytest
import torch

from segattn.figures import (
    denormalize,
    image_dice,
    prediction_figure,
)
from tests.helpers.figures import pixels


def test_prediction_figure_has_four_labelled_panels_the_dice_and_a_readable_size(model_outputs):
    image, mask, prediction, _ = model_outputs
    dice = image_dice(prediction, mask, 2)
    fig = prediction_figure(
        denormalize(image, None),
        mask,
        prediction,
        name="cat_1",
        dice=dice,
        class_names=["background", "pet"],
        original_size=(375, 500),
    )
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "ground truth", "prediction", "errors"]
    assert f"Dice {dice:.3f}" in fig._suptitle.get_text()
    width, height = pixels(fig)
    assert 700 <= width <= 820 and height <= 1.5 * width  # a TensorBoard card shows it nearly at full size
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["pet", "true positive", "false positive", "false negative"]


def test_image_dice_scores_foreground_classes_and_is_nan_without_any():
    target = torch.tensor([[0, 1], [1, 1]])
    assert image_dice(torch.tensor([[0, 1], [0, 1]]), target, 2) == pytest.approx(2 * 2 / (2 + 3))
    assert math.isnan(image_dice(torch.zeros(2, 2), torch.zeros(2, 2), 2))
    # ignored target pixels count for nothing, whatever is predicted there
    assert image_dice(
        torch.tensor([[2, 2], [0, 2]]), torch.tensor([[2, 2], [1, 1]]), 3, ignore_index=1
    ) == pytest.approx(1.0)

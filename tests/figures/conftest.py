"""Fixtures of the figure tests: a small model's prediction and attention maps for one image."""

from __future__ import annotations

import pytest
import torch

from segattn.models import UNetAttention


@pytest.fixture(scope="module")
def model_outputs():
    torch.manual_seed(0)
    net = UNetAttention(in_channels=3, num_classes=2, depth=2, base_channels=8, heads=2).eval()
    image = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(32, 32, dtype=torch.long)
    mask[8:24, 10:26] = 1
    with torch.no_grad():
        logits, maps = net(image, return_attention=True)
    return image[0], mask, logits[0].argmax(0), maps

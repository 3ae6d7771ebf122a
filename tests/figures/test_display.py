"""segattn.figures.display: undoing the pipeline's normalisation to show an image."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from segattn.figures import (
    denormalize,
    normalization_of,
)


def test_denormalize_inverts_each_channel_with_the_pipelines_mean_and_std():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    pipeline = A.Compose([A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))])
    normalised = torch.from_numpy(pipeline(image=rgb)["image"]).permute(2, 0, 1)
    stats = normalization_of(pipeline)
    assert stats is not None and stats[0] == pytest.approx((0.485, 0.456, 0.406))
    np.testing.assert_allclose(denormalize(normalised, stats), rgb / 255.0, atol=1e-5)
    assert normalization_of(A.Compose([A.HorizontalFlip()])) is None
    grey = denormalize(torch.randn(1, 4, 5), None)  # unknown statistics: per-channel min-max, grey repeated
    assert grey.shape == (4, 5, 3) and grey.min() == 0 and grey.max() == 1
    with pytest.raises(ValueError, match="2 means"):
        denormalize(torch.zeros(3, 2, 2), ((0.1, 0.2), (1.0, 1.0)))

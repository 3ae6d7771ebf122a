"""Default albumentations pipelines and the conversion of their output to tensors.

The pipelines used in practice are declared in ``configs/data/*.yaml`` and built by Hydra; the
default here (resize and normalise, no augmentation) serves code that builds a data module
directly. Masks are resized with nearest-neighbour interpolation (``mask_interpolation=0``), so
no new class values appear.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.5,)
GREY_STD = (0.25,)


def resize_and_normalize(image_size: int, grey: bool) -> A.Compose:
    """Resize to a square of ``image_size`` and normalise (ImageNet statistics for RGB)."""
    mean, std = (GREY_MEAN, GREY_STD) if grey else (IMAGENET_MEAN, IMAGENET_STD)
    return A.Compose(
        [A.Resize(image_size, image_size, mask_interpolation=0), A.Normalize(mean=mean, std=std)],
        mask_interpolation=0,
    )


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float array → (C, H, W) float32 tensor."""
    if image.ndim == 2:
        image = image[..., None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()

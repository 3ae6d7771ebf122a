"""Default albumentations pipelines and the conversion of their output to tensors.

The data modules build these from ``data.augment`` (``light`` by default, ``strong``, ``none``)
unless a config gives a whole ``train_transform`` / ``eval_transform`` pipeline.

Images are resized with ``cv2.INTER_AREA`` (an area average: antialiased when shrinking, which
the Pet photos always are), so thin structures and edges are not aliased away.

Masks always use nearest-neighbour interpolation, so no new class values appear. Resizing
transforms use ``cv2.INTER_NEAREST_EXACT`` (6): plain ``INTER_NEAREST`` (0) samples the top-left
source pixel, half a pixel off the centre-aligned grid that the image's linear interpolation uses,
which shifts masks against their images when downscaling. Warps (``Affine``) map pixel centres
either way and accept only 0..4, so they keep 0; that is also why the Compose sets no global
``mask_interpolation`` (it would push 6 into ``Affine``, which OpenCV's remap rejects).
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.5,)
GREY_STD = (0.5,)
NEAREST_EXACT = 6  # cv2.INTER_NEAREST_EXACT, for Resize / RandomResizedCrop masks
AREA = 3  # cv2.INTER_AREA, for resizing images
REFLECT_101 = 4  # cv2.BORDER_REFLECT_101: what an affine warp shows beyond the image's edge
AUGMENTS = ("none", "light", "strong")

Stats = tuple[Sequence[float] | float, Sequence[float] | float]


def default_stats(in_channels: int) -> Stats:
    """ImageNet statistics for RGB (what pretrained encoders expect), 0.5/0.5 for grey."""
    return (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else (GREY_MEAN, GREY_STD)


def normalize(in_channels: int) -> A.Normalize:
    """``Normalize`` with the default statistics for the channel count.

    For YAML pipelines whose channel count is itself configurable (``configs/data/folder.yaml``):
    ``{_target_: segattn.data.transforms.normalize, in_channels: ${data.in_channels}}``.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels: got {in_channels}; allowed: 1 (grey) or 3 (RGB)")
    mean, std = default_stats(in_channels)
    return A.Normalize(mean=mean, std=std)


def resize(image_size: int) -> A.Resize:
    """Square resize: antialiased (area) for images, exact nearest neighbour for masks."""
    return A.Resize(image_size, image_size, interpolation=AREA, mask_interpolation=NEAREST_EXACT)


def eval_pipeline(image_size: int | None, stats: Stats) -> A.Compose:
    """Resize to a square of ``image_size`` (None: keep the size) and normalise: no randomness."""
    mean, std = stats
    return A.Compose([*([resize(image_size)] if image_size else []), A.Normalize(mean=mean, std=std)])


def train_pipeline(
    image_size: int | None,
    stats: Stats,
    rgb: bool,
    augment: str = "light",
    vertical_flip: bool = False,
    rotate90: bool = False,
) -> A.Compose:
    """The training pipeline at ``image_size`` (None: keep the size, for patches), ending in normalisation.

    ``none``: resize only. ``light`` (the default): resize and random horizontal flips, plus
    vertical flips when ``vertical_flip`` (data with no up and down: microscopy, aerial views), and
    random quarter turns when ``rotate90`` (with both flips: all eight symmetries of the square, as
    a histology slide has no orientation; the crops are square, so a turn keeps their size).
    ``strong``: random resized crop (scale 0.5–1), flips, a small affine warp, colour jitter (RGB)
    or brightness/contrast jitter (grey): for long runs on small data.
    """
    if augment not in AUGMENTS:
        raise ValueError(f"data.augment: got {augment!r}; allowed: {', '.join(AUGMENTS)}")
    mean, std = stats
    flips = (
        [A.HorizontalFlip(p=0.5)]
        + ([A.VerticalFlip(p=0.5)] if vertical_flip else [])
        + ([A.RandomRotate90(p=1.0)] if rotate90 else [])
    )
    sized = [resize(image_size)] if image_size else []
    if augment == "none":
        steps = sized
    elif augment == "light":
        steps = [*sized, *flips]
    else:
        photometric = (
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5)
            if rgb
            else A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5)
        )
        # With patches (no image_size) the patch is the crop: nothing is resized.
        crop = (
            [
                A.RandomResizedCrop(
                    size=(image_size, image_size),
                    scale=(0.5, 1.0),
                    interpolation=AREA,
                    mask_interpolation=NEAREST_EXACT,
                )
            ]
            if image_size
            else []
        )
        steps = [
            *crop,
            *flips,
            # Beyond the edge, image and mask are both mirrored: a constant fill would give the
            # corners a rotation uncovers black pixels labelled class 0, a label they do not have.
            A.Affine(
                scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), border_mode=REFLECT_101, p=0.5
            ),
            photometric,
        ]
    return A.Compose([*steps, A.Normalize(mean=mean, std=std)])


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float array → (C, H, W) float32 tensor."""
    if image.ndim == 2:
        image = image[..., None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()

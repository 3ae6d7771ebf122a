"""Generated shapes: a dataset that needs no disk, for smoke runs and tests anywhere."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segattn.data.base import SegmentationDataModule
from segattn.data.transforms import Stats

#: Split → stream id in the generator's seed, so item i of two splits never coincide.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SyntheticSample:
    """A noisy background with one to three ellipses or rectangles; pixels of shape k have class
    k (1..num_classes-1) and a brightness tied to k, so a tiny U-Net learns it in a few epochs."""

    name: str
    key: tuple[int, int, int]  # (seed, split stream, index)
    size: int
    num_classes: int

    def load(self, grey: bool, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.key)
        s = self.size
        mask = np.zeros((s, s), dtype=np.int64)
        yy, xx = np.mgrid[0:s, 0:s]
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(1, self.num_classes))
            cy, cx = rng.uniform(0.2, 0.8, size=2) * s
            ry, rx = rng.uniform(0.1, 0.3, size=2) * s
            if rng.random() < 0.5:
                inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                inside = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
            mask[inside] = cls
        brightness = 40 + 180 * mask / max(1, self.num_classes - 1)
        channels = 1 if grey else 3
        noise = rng.normal(0, 25, size=(s, s, channels))
        tint = rng.uniform(0.7, 1.0, size=channels)
        image = np.clip(brightness[..., None] * tint + noise, 0, 255).astype(np.uint8)
        return (image[..., 0] if grey else image), mask


class SyntheticDataModule(SegmentationDataModule):
    """Deterministic generated data: item i of a split depends only on (seed, split, i).

    Images are drawn at ``generated_size`` (default: ``image_size``) and then go through the
    pipelines like any other data; names are ``<split>_<index:04d>``.
    """

    def __init__(
        self,
        num_train: int = 16,
        num_val: int = 8,
        num_test: int = 8,
        num_classes: int = 2,
        in_channels: int = 3,
        generated_size: int | None = None,
        **kwargs,
    ) -> None:
        if kwargs.get("seed") is None:
            kwargs["seed"] = 0
        kwargs.setdefault("image_size", 64)
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"data.num_classes: got {num_classes}; expected at least 2 (background and a shape)")
        if in_channels not in (1, 3):
            raise ValueError(f"data.in_channels: got {in_channels}; allowed: 1 or 3")
        for name, count in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if count < 0:
                raise ValueError(f"data.{name}: got {count}; expected an integer >= 0")
        self.counts = {"train": num_train, "val": num_val, "test": num_test}
        self.num_classes, self.in_channels = num_classes, in_channels
        self.class_names = ["background"] + [f"shape_{k}" for k in range(1, num_classes)]
        self.ignore_index = None
        self.generated_size = generated_size or self.image_size

    def mask_mapping(self) -> dict[int, int]:
        return {k: k for k in range(self.num_classes)}

    def default_normalization(self) -> Stats:
        """Scalar statistics (any channel count), the same as ``configs/data/synthetic.yaml``."""
        return 0.5, 0.25

    def build_splits(self) -> dict[str, list[SyntheticSample]]:
        seed = self.seed % 2**32  # SeedSequence takes non-negative integers
        return {
            split: [
                SyntheticSample(
                    f"{split}_{i:04d}", (seed, SPLIT_STREAMS[split], i), self.generated_size, self.num_classes
                )
                for i in range(count)
            ]
            for split, count in self.counts.items()
        }

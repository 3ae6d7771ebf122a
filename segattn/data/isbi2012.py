"""ISBI-2012 EM membrane segmentation (30 labelled 512×512 grey slices)."""

from __future__ import annotations

from pathlib import Path

from segattn.data.base import SegmentationDataModule, seeded_split
from segattn.data.folder import paired_samples
from segattn.data.errors import DatasetLayoutError

LAYOUT = "train/images/<id>.png and train/masks/<id>.png (512x512 grey; mask 0 = membrane, 255 = cell interior)"


class ISBI2012DataModule(SegmentationDataModule):
    """Membrane is the foreground: class 1 = membrane (mask 0), class 0 = cell interior (mask 255).

    The labelled slices are split by ``seed`` into train / val / test (``val_fraction``,
    ``test_fraction``); the test slices are held out for the final evaluation, since the
    challenge's own test labels were never published.
    """

    def __init__(self, root: str, val_fraction: float = 0.2, test_fraction: float = 0.2, skip_missing: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise ValueError(f"data.{name}: got {value}; expected a fraction in [0, 1)")
        if val_fraction + test_fraction >= 1:
            raise ValueError(f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction}; must leave slices to train on")
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.skip_missing = skip_missing
        self.in_channels, self.num_classes = 1, 2
        self.class_names = ["cell", "membrane"]
        self.ignore_index = None

    def mask_mapping(self) -> dict[int, int]:
        return {0: 1, 255: 0}

    def build_splits(self) -> dict[str, list]:
        images, masks = self.root / "train" / "images", self.root / "train" / "masks"
        for part in (self.root, images, masks):
            if not part.is_dir():
                raise DatasetLayoutError(
                    f"ISBI-2012 data: {part} is missing. Expected under data.root={self.root}: {LAYOUT}. "
                    "Download the challenge data (http://brainiac2.mit.edu/isbi_challenge/) and point data.root= at it."
                )
        samples = {s.name: s for s in paired_samples(images, masks, self.skip_missing)}
        val, test, train = seeded_split(list(samples), [self.val_fraction, self.test_fraction], self.seed)
        return {split: [samples[n] for n in sorted(names)] for split, names in (("train", train), ("val", val), ("test", test))}

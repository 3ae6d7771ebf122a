"""ISBI-2012 EM membrane segmentation (30 labelled 512×512 grey slices)."""

from __future__ import annotations

from pathlib import Path

from segattn.data.base import SegmentationDataModule
from segattn.data.folder import paired_samples
from segattn.data.samples import FileSample
from segattn.data.settings import raise_on_problems
from segattn.data.splits import natural_key, seeded_split
from segattn.data.transforms import Stats
from segattn.errors import DatasetLayoutError

LAYOUT = "train/images/<id>.png and train/masks/<id>.png (512x512 grey; mask 0 = membrane, 255 = cell interior)"
#: Pixel mean and std of the 30 labelled slices (intensities scaled to 0..1).
ISBI_MEAN, ISBI_STD = (0.495,), (0.173,)


class ISBI2012DataModule(SegmentationDataModule):
    """Membrane is the foreground: class 1 = membrane (mask 0), class 0 = cell interior (mask 255).

    The 30 labelled slices are consecutive sections of one volume, so neighbours look alike: a
    random test split would score slices whose neighbours were trained on. The test split is
    therefore the last ``test_fraction`` of the slices in order (24–29 by default), held out for
    the final evaluation since the challenge's own test labels were never published; validation
    is ``val_fraction`` of the remaining slices, drawn by ``seed`` (5 of 00–23, leaving 19).
    """

    def __init__(
        self, root: str, val_fraction: float = 0.2, test_fraction: float = 0.2, skip_missing: bool = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        raise_on_problems(type(self).__name__, dict(val_fraction=val_fraction, test_fraction=test_fraction))
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.skip_missing = skip_missing
        self.in_channels, self.num_classes = 1, 2
        self.class_names = ["cell", "membrane"]
        self.ignore_index = None

    def mask_mapping(self) -> dict[int, int]:
        return {0: 1, 255: 0}

    def default_normalization(self) -> Stats:
        return ISBI_MEAN, ISBI_STD

    def build_splits(self) -> dict[str, list[FileSample]]:
        images, masks = self.root / "train" / "images", self.root / "train" / "masks"
        for part in (self.root, images, masks):
            if not part.is_dir():
                raise DatasetLayoutError(
                    f"ISBI-2012 data: {part} is missing. Expected under data.root={self.root}: {LAYOUT}. "
                    "Get the challenge data (http://brainiac2.mit.edu/isbi_challenge/; a PNG export is in "
                    "github.com/zhixuhao/unet, data/membrane/train/{image,label}, to be renamed to images/ and "
                    "masks/) and point data.root=<path to a local copy> at it."
                )
        samples = {s.name: s for s in paired_samples(images, masks, self.skip_missing)}
        ordered = sorted(samples, key=natural_key)  # slice order: 0.png, 1.png, ..., 10.png unpadded too
        num_test = max(1, round(self.test_fraction * len(ordered))) if self.test_fraction > 0 else 0
        num_test = min(num_test, len(ordered) - 1)
        test = ordered[len(ordered) - num_test :]
        val, train = seeded_split(ordered[: len(ordered) - num_test], [self.val_fraction], self.seed)
        return {split: [samples[n] for n in names] for split, names in (("train", train), ("val", val), ("test", test))}

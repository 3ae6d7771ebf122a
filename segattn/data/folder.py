"""Any folder of images and masks matched by file stem, with a mapping from mask values to classes."""

from __future__ import annotations

from pathlib import Path

from segattn.data.base import SegmentationDataModule, report_missing, seeded_split
from segattn.data.errors import DatasetContentError, DatasetLayoutError
from segattn.data.io import IMAGE_EXTENSIONS
from segattn.data.samples import FileSample

LAYOUT = "<root>/images/* and <root>/masks/* (same file stems), or <root>/{train,val,test}/{images,masks}/*"


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder keyed by stem; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in found:
                raise DatasetContentError(f"{folder} holds two files with the stem {path.stem!r}: {found[path.stem].name} and {path.name}")
            found[path.stem] = path
    return found


def paired_samples(images: Path, masks: Path, skip_missing: bool) -> list[FileSample]:
    """Samples for every stem present in both folders; unpaired files are an error (or skipped)."""
    image_files, mask_files = files_by_stem(images), files_by_stem(masks)
    report_missing(sorted(set(image_files) - set(mask_files)), f"images in {images} have their mask", skip_missing)
    report_missing(sorted(set(mask_files) - set(image_files)), f"masks in {masks} have their image", skip_missing)
    stems = sorted(set(image_files) & set(mask_files))
    if not stems:
        raise DatasetContentError(f"no image/mask pairs in {images} and {masks} (matched by file stem)")
    return [FileSample(s, image_files[s], mask_files[s]) for s in stems]


class FolderDataModule(SegmentationDataModule):
    """Images and masks in ``root/images`` and ``root/masks`` (split by ``seed`` into train / val /
    test with ``val_fraction`` and ``test_fraction``), or already split in
    ``root/{train,val,test}/{images,masks}``. ``mask_mapping`` maps mask pixel values to class ids
    (e.g. ``{0: 0, 255: 1}``); any other value in a mask is an error naming the file."""

    def __init__(
        self,
        root: str,
        mask_mapping: dict[int, int] | None = None,
        num_classes: int | None = None,
        in_channels: int = 3,
        class_names: list[str] | None = None,
        ignore_index: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        skip_missing: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if in_channels not in (1, 3):
            raise ValueError(f"data.in_channels: got {in_channels}; allowed: 1 (grey) or 3 (RGB)")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise ValueError(f"data.{name}: got {value}; expected a fraction in [0, 1)")
        self.root = Path(root)
        self._mapping = {int(k): int(v) for k, v in (mask_mapping or {0: 0, 255: 1}).items()}
        class_ids = sorted({v for v in self._mapping.values() if v != ignore_index})
        self.num_classes = num_classes if num_classes is not None else class_ids[-1] + 1
        if class_ids[-1] >= self.num_classes or class_ids[0] < 0:
            raise ValueError(f"data.mask_mapping maps to class ids {class_ids}, outside 0..{self.num_classes - 1} (data.num_classes={self.num_classes})")
        self.class_names = list(class_names) if class_names else [f"class_{i}" for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"data.class_names has {len(self.class_names)} names for {self.num_classes} classes")
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.skip_missing = skip_missing

    def mask_mapping(self) -> dict[int, int]:
        return self._mapping

    def build_splits(self) -> dict[str, list[FileSample]]:
        if (self.root / "train" / "images").is_dir():
            splits = {}
            for split in ("train", "val", "test"):
                images, masks = self.root / split / "images", self.root / split / "masks"
                if not images.is_dir() and split != "train":
                    splits[split] = []
                    continue
                if not masks.is_dir():
                    raise DatasetLayoutError(f"{masks} is missing (it must sit beside {images}). Expected: {LAYOUT}")
                splits[split] = paired_samples(images, masks, self.skip_missing)
            return splits
        images, masks = self.root / "images", self.root / "masks"
        for part in (self.root, images, masks):
            if not part.is_dir():
                raise DatasetLayoutError(f"folder dataset: {part} is missing. Expected: {LAYOUT}. Point data.root= at such a folder.")
        samples = {s.name: s for s in paired_samples(images, masks, self.skip_missing)}
        val, test, train = seeded_split(list(samples), [self.val_fraction, self.test_fraction], self.seed)
        return {split: [samples[n] for n in names] for split, names in (("train", train), ("val", val), ("test", test))}

"""Any folder of images and masks matched by file stem, with a mapping from mask values to classes."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from segattn.data.base import SegmentationDataModule
from segattn.data.io import IMAGE_EXTENSIONS
from segattn.data.mask_values import BINARY_MAPPINGS, infer_binary_mapping
from segattn.data.samples import FileSample
from segattn.data.settings import raise_on_problems
from segattn.data.splits import report_missing, seeded_split
from segattn.errors import DatasetContentError, DatasetLayoutError

log = logging.getLogger(__name__)
LAYOUT = (
    f"<root>/images/* and <root>/masks/* (same file stems; {' '.join(sorted(IMAGE_EXTENSIONS))}), "
    "or already split: <root>/{train,val,test}/{images,masks}/*"
)


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder keyed by stem; two files with one stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in found:
                raise DatasetContentError(
                    f"{folder} holds two files with the stem {path.stem!r}: {found[path.stem].name} and {path.name}"
                )
            found[path.stem] = path
    return found


def unreadable_note(folder: Path, stems: list[str], suffix: str | None = None) -> str:
    """When files with the missing stems are there in a format segattn does not read, say so."""
    wanted = {stem + (suffix or "") for stem in stems}
    found = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.stem in wanted and p.suffix.lower() not in IMAGE_EXTENSIONS
    )
    if not found:
        return ""
    return (
        f"; {len(found)} of them are there in a format segattn does not read (first: {', '.join(found[:3])}); "
        f"readable: {' '.join(sorted(IMAGE_EXTENSIONS))}"
    )


def mask_suffix_of(image_stems: Iterable[str], mask_stems: Iterable[str]) -> str | None:
    """The ending mask names add to their image's stem (ISIC's ``_segmentation``, ``_mask``): the
    one most masks share after some image's stem, when it pairs at least half of them; else None.
    Between endings as common, the shortest (the longest image stem: ``10_m`` is ``10`` + ``_m``,
    not ``1`` + ``0_m``), then the first in text order, so every process picks the same."""
    images, counts = set(image_stems), Counter()
    masks = list(mask_stems)
    for stem in masks:
        counts.update({stem[cut:] for cut in range(1, len(stem)) if stem[:cut] in images})
    if not counts:
        return None
    suffix = min(counts, key=lambda s: (-counts[s], len(s), s))
    return suffix if 2 * counts[suffix] >= len(masks) else None


def paired_samples(images: Path, masks: Path, skip_missing: bool, mask_suffix: str | None = None) -> list[FileSample]:
    """Samples for every image whose mask has its stem (plus ``mask_suffix``); unpaired files are
    an error (or skipped). Without a suffix and with no exact pair at all, the suffix is read from
    the names (``mask_suffix_of``)."""
    image_files, mask_files = files_by_stem(images), files_by_stem(masks)
    if mask_suffix is None and not image_files.keys() & mask_files.keys():
        mask_suffix = mask_suffix_of(image_files, mask_files)
        if mask_suffix:
            log.info(
                "masks in %s are named <image stem>%s (read from the names; data.mask_suffix sets it)",
                masks,
                mask_suffix,
            )
    if mask_suffix:
        named: dict[str, Path] = {}
        for stem, path in mask_files.items():
            key = stem[: -len(mask_suffix)] if stem.endswith(mask_suffix) else stem
            if key in named:
                raise DatasetContentError(
                    f"{masks} holds two masks for the image stem {key!r} (mask suffix {mask_suffix!r}): "
                    f"{named[key].name} and {path.name}"
                )
            named[key] = path
        mask_files = named
    without_mask = sorted(set(image_files) - set(mask_files))
    without_image = sorted(set(mask_files) - set(image_files))
    report_missing(
        without_mask,
        f"images in {images} have their mask missing on disk",
        skip_missing,
        f"; masks are matched by file stem in {masks}{unreadable_note(masks, without_mask, mask_suffix)}",
    )
    report_missing(
        without_image,
        f"masks in {masks} have their image missing on disk",
        skip_missing,
        f"; images are matched by file stem in {images}{unreadable_note(images, without_image)}",
    )
    stems = sorted(set(image_files) & set(mask_files))
    if not stems:
        raise DatasetContentError(
            f"no image/mask pairs in {images} and {masks} (matched by file stem). Expected: {LAYOUT}; "
            "masks named <image stem><suffix> need data.mask_suffix=<suffix>"
        )
    return [FileSample(s, image_files[s], mask_files[s]) for s in stems]


class FolderDataModule(SegmentationDataModule):
    """Images and masks in ``root/images`` and ``root/masks`` (split by ``seed`` into train / val /
    test with ``val_fraction`` and ``test_fraction``), or already split in
    ``root/{train,val,test}/{images,masks}`` (used as is). ``mask_mapping`` maps mask pixel values
    to class ids (e.g. ``{0: 0, 255: 1}``); any other value in a mask is an error naming the file.
    Without a mapping the masks must be binary, saved as 0/255 or as 0/1, or all as JPEG (read
    from the masks, ``mask_values.py``).
    A mask may be named after its image with ``mask_suffix`` added (``x.jpg`` → ``x_mask.png``);
    left null, the suffix is read from the names when no mask has its image's exact stem.
    A value may map to ``ignore_index`` to leave those pixels out of loss and metrics."""

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
        mask_suffix: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        raise_on_problems(
            type(self).__name__, dict(in_channels=in_channels, val_fraction=val_fraction, test_fraction=test_fraction)
        )
        self.root = Path(root)
        # Null: binary masks, 0/255 or 0/1 as the masks show in setup (mask_values.py); both give classes 0 and 1.
        self._mapping_given = bool(mask_mapping)
        self._mapping = {int(k): int(v) for k, v in (mask_mapping or BINARY_MAPPINGS[0]).items()}
        class_ids = sorted({v for v in self._mapping.values() if v != ignore_index})
        if not class_ids:
            raise ValueError(
                f"data.mask_mapping {self._mapping} maps every value to ignore_index={ignore_index}; no class is left"
            )
        self.num_classes = int(num_classes) if num_classes is not None else class_ids[-1] + 1
        if class_ids[0] < 0 or class_ids[-1] >= self.num_classes:
            raise ValueError(
                f"data.mask_mapping maps to class ids {class_ids}, outside 0..{self.num_classes - 1} "
                f"(data.num_classes={self.num_classes})"
            )
        self.class_names = (
            [str(n) for n in class_names] if class_names else [f"class_{i}" for i in range(self.num_classes)]
        )
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"data.class_names has {len(self.class_names)} names for {self.num_classes} classes")
        self.in_channels = in_channels
        self.ignore_index = ignore_index
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.skip_missing = skip_missing
        if mask_suffix is not None and not isinstance(mask_suffix, str):
            raise ValueError(
                f"data.mask_suffix: got {mask_suffix!r}; expected text such as _mask, or null (read from the names)"
            )
        self.mask_suffix = mask_suffix

    def mask_mapping(self) -> dict[int, int]:
        return self._mapping

    def resolve_mask_mapping(self, samples: list[FileSample]) -> None:
        if not self._mapping_given:
            self._mapping = infer_binary_mapping([s.mask_path for s in samples], self.root)

    def build_splits(self) -> dict[str, list[FileSample]]:
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"folder dataset: data.root={self.root} does not exist. Expected: {LAYOUT}. "
                "Point data.root= at such a folder."
            )
        if (self.root / "train").is_dir():
            return self._presplit()
        images, masks = self.root / "images", self.root / "masks"
        for part in (images, masks):
            if not part.is_dir():
                raise DatasetLayoutError(
                    f"folder dataset: {part} is missing. Expected: {LAYOUT}. Point data.root= at such a folder."
                )
        samples = {s.name: s for s in paired_samples(images, masks, self.skip_missing, self.mask_suffix)}
        val, test, train = seeded_split(list(samples), [self.val_fraction, self.test_fraction], self.seed)
        return {split: [samples[n] for n in names] for split, names in (("train", train), ("val", val), ("test", test))}

    def _presplit(self) -> dict[str, list[FileSample]]:
        """``root/{train,val,test}/{images,masks}`` as is; val and test may be absent (empty)."""
        splits: dict[str, list[FileSample]] = {}
        for split in ("train", "val", "test"):
            images, masks = self.root / split / "images", self.root / split / "masks"
            if split != "train" and not (self.root / split).is_dir():
                splits[split] = []
                continue
            for part in (images, masks):
                if not part.is_dir():
                    raise DatasetLayoutError(
                        f"folder dataset: {part} is missing (found {self.root / split}). Expected: {LAYOUT}"
                    )
            splits[split] = paired_samples(images, masks, self.skip_missing, self.mask_suffix)
        return splits

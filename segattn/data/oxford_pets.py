"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) in its official layout, binary or trimap task."""

from __future__ import annotations

import logging
from pathlib import Path

from segattn.data.base import SegmentationDataModule
from segattn.data.patches import PAD_LABEL
from segattn.data.samples import FileSample
from segattn.data.settings import raise_on_problems
from segattn.data.splits import report_missing, seeded_split
from segattn.errors import DatasetLayoutError

log = logging.getLogger(__name__)
LAYOUT = "images/<Name>.jpg, annotations/trimaps/<Name>.png, annotations/trainval.txt, annotations/test.txt"
LAYOUT_PARTS = ("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt")
HOW_TO_GET = (
    "Get it with data.download=true (online; torchvision fetches it into data.root), "
    "or point data.root=<path to a local copy> (the folder holding images/ and annotations/, or its parent)."
)
DOWNLOAD_DIR = "oxford-iiit-pet"  # where torchvision.datasets.OxfordIIITPet puts the files under its root


def should_download(download: bool | str, layout_present: bool) -> bool:
    """``true``: always let torchvision fetch (it skips files it already has); ``false``: never;
    ``auto`` (what ``make train`` passes): only when the official layout is not there yet."""
    raise_on_problems("Oxford-IIIT Pet", {"download": download})
    return download is True or (download == "auto" and not layout_present)


def read_split_list(path: Path) -> list[str]:
    """Names from an official list file (``<Name> <CLASS-ID> <SPECIES> <BREED-ID>``, ``#`` comments)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


class OxfordPetsDataModule(SegmentationDataModule):
    """Oxford-IIIT Pet segmentation.

    ``task="binary"``: class 1 = pet (trimap values 1 and 3: pet and border), 0 = background
    (trimap 2), the convention of the segmentation_models_pytorch example, so numbers compare.
    ``task="trimap"``: 0 background, 1 pet, 2 border. ``ignore_border=true`` leaves the border out
    of loss and metrics: in the trimap task class 2 becomes the ``ignore_index``; in the binary task
    the border gets the label ``PAD_LABEL`` (255), the ``ignore_index``, instead of counting as pet.
    Splits: train/val carved from ``trainval.txt`` by ``seed`` (``val_fraction``), test = ``test.txt``.
    ``root`` may hold the layout itself or ``oxford-iiit-pet/`` (where ``download=true`` puts it).
    """

    def __init__(
        self,
        root: str,
        task: str = "binary",
        ignore_border: bool = False,
        val_fraction: float = 0.1,
        download: bool | str = False,
        skip_missing: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        raise_on_problems(type(self).__name__, dict(task=task, val_fraction=val_fraction, download=download))
        self.root = Path(root)
        self.task = task
        self.ignore_border = ignore_border
        self.val_fraction = val_fraction
        self.download = download
        self.skip_missing = skip_missing
        self.in_channels = 3
        if task == "binary":  # ignore_border: the border is neither pet nor background, but left out
            self.num_classes, self.class_names, self.ignore_index = (
                2,
                ["background", "pet"],
                PAD_LABEL if ignore_border else None,
            )
        else:
            self.num_classes, self.class_names = 3, ["background", "pet", "border"]
            self.ignore_index = 2 if ignore_border else None

    def mask_mapping(self) -> dict[int, int]:
        if self.task == "binary":
            return {1: 1, 2: 0, 3: PAD_LABEL if self.ignore_border else 1}
        return {1: 1, 2: 0, 3: 2}

    def prepare_data(self) -> None:
        """Download through torchvision (progress bar; into ``root/oxford-iiit-pet``) as ``download``
        says. A failed download (offline) ends with the usual missing-data message plus the reason."""
        if not should_download(self.download, self.layout_present()):
            return
        from torchvision.datasets import OxfordIIITPet

        log.info("Downloading Oxford-IIIT Pet (about 800 MB) through torchvision into %s", self.root / DOWNLOAD_DIR)
        try:
            for split in ("trainval", "test"):
                OxfordIIITPet(str(self.root), split=split, target_types="segmentation", download=True)
        except (
            OSError,
            RuntimeError,
        ) as err:  # URLError is an OSError; torchvision raises RuntimeError on bad archives
            raise DatasetLayoutError(
                f"Oxford-IIIT Pet: data.root={self.root} has no copy of the dataset and downloading it failed ({err}). "
                f"Expected the official layout: {LAYOUT}. {HOW_TO_GET}"
            ) from None

    def layout_present(self) -> bool:
        """Whether ``layout_root`` would find the official layout."""
        try:
            self.layout_root()
        except DatasetLayoutError:
            return False
        return True

    def layout_root(self) -> Path:
        """The folder holding the official layout: ``root`` itself or ``root/oxford-iiit-pet``.

        When neither is complete, the error names the parts missing from the closer candidate.
        """
        if not self.root.exists():
            raise DatasetLayoutError(
                f"Oxford-IIIT Pet: data.root={self.root} does not exist. Expected the official layout: {LAYOUT}. "
                f"{HOW_TO_GET}"
            )
        candidates = [self.root, self.root / DOWNLOAD_DIR]
        missing = {c: [part for part in LAYOUT_PARTS if not (c / part).exists()] for c in candidates}
        for candidate in candidates:
            if not missing[candidate]:
                return candidate
        closest = min(candidates, key=lambda c: len(missing[c]))  # ties go to root itself
        also = f"; also looked in {self.root / DOWNLOAD_DIR}" if closest == self.root else ""
        raise DatasetLayoutError(
            f"Oxford-IIIT Pet: {closest} lacks {', '.join(missing[closest])} "
            f"(missing: {', '.join(str(closest / p) for p in missing[closest])}{also}). "
            f"Expected the official layout under data.root: {LAYOUT}. {HOW_TO_GET}"
        )

    def build_splits(self) -> dict[str, list[FileSample]]:
        root = self.layout_root()
        image_dir, trimap_dir = root / "images", root / "annotations" / "trimaps"

        def sample(name: str) -> FileSample:
            return FileSample(name, image_dir / f"{name}.jpg", trimap_dir / f"{name}.png")

        available: dict[str, list[str]] = {}
        for split in ("trainval", "test"):
            names = read_split_list(root / "annotations" / f"{split}.txt")
            missing = [n for n in names if not (sample(n).image_path.is_file() and sample(n).mask_path.is_file())]
            report_missing(
                missing,
                f"of the {len(names)} images in annotations/{split}.txt are missing on disk",
                self.skip_missing,
                f"; each listed name needs images/<Name>.jpg and annotations/trimaps/<Name>.png under {root}",
            )
            absent = set(missing)
            available[split] = [n for n in names if n not in absent]
        val, train = seeded_split(available["trainval"], [self.val_fraction], self.seed)
        return {
            "train": [sample(n) for n in train],
            "val": [sample(n) for n in val],
            "test": [sample(n) for n in available["test"]],
        }

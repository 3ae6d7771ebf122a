"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) in its official layout, binary or trimap task."""

from __future__ import annotations

from pathlib import Path

from segattn.data.base import SegmentationDataModule, report_missing, seeded_split
from segattn.data.errors import DatasetLayoutError
from segattn.data.samples import FileSample

TASKS = ("binary", "trimap")
LAYOUT = "images/<Name>.jpg, annotations/trimaps/<Name>.png, annotations/trainval.txt, annotations/test.txt"


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
    ``task="trimap"``: 0 background, 1 pet, 2 border; ``ignore_border=true`` makes the border the
    ``ignore_index`` (left out of loss and metrics).
    Splits: train/val carved from ``trainval.txt`` by ``seed`` (``val_fraction``), test = ``test.txt``.
    ``root`` may hold the layout itself or ``oxford-iiit-pet/`` (where ``download=true`` puts it).
    """

    def __init__(
        self,
        root: str,
        task: str = "binary",
        ignore_border: bool = False,
        val_fraction: float = 0.1,
        download: bool = False,
        skip_missing: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"data.task: got {task!r}; allowed: {', '.join(TASKS)}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"data.val_fraction: got {val_fraction}; expected a fraction in [0, 1)")
        self.root = Path(root)
        self.task = task
        self.ignore_border = ignore_border
        self.val_fraction = val_fraction
        self.download = download
        self.skip_missing = skip_missing
        self.in_channels = 3
        if task == "binary":
            self.num_classes, self.class_names, self.ignore_index = 2, ["background", "pet"], None
        else:
            self.num_classes, self.class_names = 3, ["background", "pet", "border"]
            self.ignore_index = 2 if ignore_border else None

    def mask_mapping(self) -> dict[int, int]:
        return {1: 1, 2: 0, 3: 1} if self.task == "binary" else {1: 1, 2: 0, 3: 2}

    def prepare_data(self) -> None:
        if self.download:
            from torchvision.datasets import OxfordIIITPet

            for split in ("trainval", "test"):
                OxfordIIITPet(str(self.root), split=split, target_types="segmentation", download=True)

    def layout_root(self) -> Path:
        """The folder holding images/ and annotations/ (root itself or root/oxford-iiit-pet)."""
        for candidate in (self.root, self.root / "oxford-iiit-pet"):
            if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
                return candidate
        how = (
            "Get it with data.download=true (online; torchvision fetches it into data.root), "
            "or point data.root=<folder> at a local copy."
        )
        if not self.root.exists():
            raise DatasetLayoutError(f"Oxford-IIIT Pet root {self.root} does not exist. Expected the official layout: {LAYOUT}. {how}")
        raise DatasetLayoutError(
            f"Oxford-IIIT Pet root {self.root} lacks images/ and annotations/ (also looked in {self.root / 'oxford-iiit-pet'}). "
            f"Expected the official layout: {LAYOUT}. {how}"
        )

    def build_splits(self) -> dict[str, list[FileSample]]:
        root = self.layout_root()
        for part in ("annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt"):
            if not (root / part).exists():
                raise DatasetLayoutError(
                    f"Oxford-IIIT Pet root {root} lacks {part}. Expected the official layout: {LAYOUT}. "
                    "Re-download with data.download=true or fix data.root=."
                )
        lists = {split: read_split_list(root / "annotations" / f"{split}.txt") for split in ("trainval", "test")}
        available = {}
        for split, names in lists.items():
            present, missing = [], []
            for name in names:
                image, mask = root / "images" / f"{name}.jpg", root / "annotations" / "trimaps" / f"{name}.png"
                (present if image.is_file() and mask.is_file() else missing).append(name)
            report_missing(missing, f"of the {len(names)} images in annotations/{split}.txt are", self.skip_missing)
            available[split] = present
        val, train = seeded_split(available["trainval"], [self.val_fraction], self.seed)

        def samples(names: list[str]) -> list[FileSample]:
            return [FileSample(n, root / "images" / f"{n}.jpg", root / "annotations" / "trimaps" / f"{n}.png") for n in names]

        return {"train": samples(train), "val": samples(val), "test": samples(available["test"])}

"""Data sources of segattn, each a LightningDataModule with the same items and loaders."""

from segattn.data.base import SegmentationDataModule, SegmentationDataset
from segattn.data.folder import FolderDataModule
from segattn.data.isbi2012 import ISBI2012DataModule
from segattn.data.oxford_pets import OxfordPetsDataModule
from segattn.data.synthetic import SyntheticDataModule
from segattn.errors import DatasetContentError, DatasetLayoutError

__all__ = [
    "DatasetContentError",
    "DatasetLayoutError",
    "FolderDataModule",
    "ISBI2012DataModule",
    "OxfordPetsDataModule",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SyntheticDataModule",
]

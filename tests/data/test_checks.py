"""segattn.data.checks: every file is read before training, and bad files or scoreless splits are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segattn.data import FolderDataModule
from segattn.data.checks import check_samples, scored_classes_problem
from segattn.errors import DatasetContentError
from tests.helpers.files import folder


def test_3_validation_masks_without_foreground_are_named(tmp_path):
    root = folder(tmp_path / "d", value=1)
    for mask in (root / "val" / "masks").iterdir():
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(mask)
    dm = FolderDataModule(root=str(root), mask_mapping={0: 0, 1: 1}, image_size=16)
    present = check_samples(dm, ("train", "val"))
    assert present == {"train": {0, 1}, "val": {0}}
    message = scored_classes_problem(present["val"], dm, include_background=False)
    assert "val split's masks hold none of the scored classes ['class_1']" in message
    assert scored_classes_problem(present["train"], dm, include_background=False) is None


def test_4_every_bad_file_is_named_before_training(tmp_path):
    root = folder(tmp_path / "d", value=1, n=4)
    images = root / "train" / "images"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(images / "train0.jpg")
    (images / "train0.png").unlink()
    (images / "train0.jpg").write_bytes((images / "train0.jpg").read_bytes()[:60])  # truncated JPEG
    (images / "train1.png").unlink()
    (images / "train1.jpg").write_text("not an image")  # a text file named .jpg
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(
        root / "val" / "masks" / "val2.png"
    )  # value outside the mapping
    dm = FolderDataModule(root=str(root), mask_mapping={0: 0, 1: 1}, image_size=16)
    with pytest.raises(DatasetContentError) as info:
        check_samples(dm, ("train", "val"), workers=2)
    message = str(info.value)
    assert "3 of the 8 samples cannot be used" in message
    for name in ("train0.jpg", "train1.jpg", "val2.png"):
        assert name in message
    assert "values [7]" in message and "check_data=false" in message

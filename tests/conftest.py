"""Shared fixtures: tiny datasets in the official layouts, generated on the fly, and real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Helpers shared by the test modules assert too: rewrite them for pytest's detailed failure messages.
pytest.register_assert_rewrite("tests.helpers")


def write_pair(image_path: Path, mask_path: Path, mask: np.ndarray, grey: bool = False, seed: int = 0) -> None:
    """An image whose brightness follows its mask (so alignment can be checked) plus the mask."""
    rng = np.random.default_rng(seed)
    base = (mask.astype(np.float32) * 60 + rng.normal(0, 5, mask.shape)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(base if grey else np.stack([base, base // 2, 255 - base], axis=-1))
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(image_path, format="JPEG" if image_path.suffix == ".jpg" else "PNG")
    Image.fromarray(mask.astype(np.uint8)).save(mask_path)


def trimap(h: int, w: int, seed: int) -> np.ndarray:
    """Background 2, a pet rectangle 1 with a border 3 around it."""
    rng = np.random.default_rng(seed)
    mask = np.full((h, w), 2, dtype=np.uint8)
    top, left = rng.integers(2, h // 3), rng.integers(2, w // 3)
    mask[top - 1 : top + h // 2 + 1, left - 1 : left + w // 2 + 1] = 3
    mask[top : top + h // 2, left : left + w // 2] = 1
    return mask


@pytest.fixture
def tiny_pets(tmp_path: Path) -> Path:
    """Official Oxford-IIIT Pet layout: 10 trainval and 4 test images, with '#' comment lines."""
    root = tmp_path / "oxford-pets"
    names = {"trainval": [f"Cat_{i}" for i in range(10)], "test": [f"Dog_{i}" for i in range(4)]}
    for i, name in enumerate(names["trainval"] + names["test"]):
        h, w = 30 + i, 40 + 2 * i
        write_pair(
            root / "images" / f"{name}.jpg", root / "annotations" / "trimaps" / f"{name}.png", trimap(h, w, i), seed=i
        )
    for split, split_names in names.items():
        lines = ["#Image CLASS-ID SPECIES BREED ID"] + [f"{n} 1 1 1" for n in split_names]
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def tiny_isbi(tmp_path: Path) -> Path:
    """ISBI-2012 layout: 10 grey slices with 0/255 masks."""
    root = tmp_path / "isbi2012"
    for i in range(10):
        mask = np.full((32, 32), 255, dtype=np.uint8)
        mask[:, i : i + 2] = 0
        mask[i + 5, :] = 0
        write_pair(
            root / "train" / "images" / f"{i:02d}.png",
            root / "train" / "masks" / f"{i:02d}.png",
            mask // 255,
            grey=True,
            seed=i,
        )
        Image.fromarray(mask).save(root / "train" / "masks" / f"{i:02d}.png")
    return root


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """images/ + masks/ with 0/255 masks, 10 pairs."""
    root = tmp_path / "folder"
    for i in range(10):
        mask = np.zeros((24, 36), dtype=np.uint8)
        mask[4 : 12 + i, 6:20] = 1
        write_pair(root / "images" / f"img{i}.png", root / "masks" / f"img{i}.png", mask, seed=i)
        Image.fromarray(mask * 255).save(root / "masks" / f"img{i}.png")
    return root


@pytest.fixture
def real_data_dir() -> Path:
    """``$SEGATTN_DATA_DIR`` (CI: ../shared/data), or skip when it is not set."""
    value = os.environ.get("SEGATTN_DATA_DIR")
    if not value:
        pytest.skip(
            "SEGATTN_DATA_DIR is not set: real Oxford-IIIT Pet / ISBI-2012 tests need it (CI sets ../shared/data)"
        )
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"SEGATTN_DATA_DIR={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One smoke training run (tiny model, generated data) shared by the command-line tests."""
    from tests.helpers.commands import run

    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    run("train.py", "experiment=smoke", f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false")
    return run_dir

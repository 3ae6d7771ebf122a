"""segattn.data.folder: images and masks paired by stem, their mask values, layouts and errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from segattn.data import FolderDataModule
from segattn.data.checks import check_samples
from segattn.data.folder import mask_suffix_of
from segattn.data.mask_values import infer_binary_mapping
from segattn.errors import DatasetContentError, DatasetLayoutError
from tests.helpers.configs import compose_train
from tests.helpers.data import item_named
from tests.helpers.files import folder


@pytest.mark.parametrize("prefix", ["", "++"])
def test_1_a_mask_mapping_given_replaces_the_default(tmp_path, prefix):
    root = folder(tmp_path / "d", value=1)
    cfg = compose_train(
        "data=folder", f"data.root={root}", f"{prefix}data.mask_mapping={{0:0,1:1}}", "data.num_workers=0"
    )
    assert dict(cfg.data.mask_mapping) == {0: 0, 1: 1}  # 255 is not kept from a default
    dm = instantiate(cfg.data)
    assert dm.num_classes == 2
    check_samples(dm, ("train", "val"))  # 0/1 masks load


def test_folder_matches_by_stem_and_maps_values(tiny_folder):
    dm = FolderDataModule(root=str(tiny_folder), image_size=16, mask_mapping={0: 0, 255: 1})
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 1, 1]
    assert set(dm.dataset("train")[0]["mask"].unique().tolist()) <= {0, 1}


def test_folder_with_split_subfolders_and_grey_images(tiny_folder, tmp_path):
    root = tmp_path / "split-folder"
    for split, stems in (("train", range(0, 6)), ("val", range(6, 8)), ("test", range(8, 10))):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in stems:
            Image.open(tiny_folder / "images" / f"img{i}.png").save(root / split / "images" / f"img{i}.png")
            Image.open(tiny_folder / "masks" / f"img{i}.png").save(root / split / "masks" / f"img{i}.png")
    dm = FolderDataModule(root=str(root), in_channels=1, image_size=16)
    assert dm.dataset("val").names == ["img6", "img7"]
    assert dm.dataset("train")[0]["image"].shape == (1, 16, 16)


def test_folder_unpaired_files_are_counted(tiny_folder):
    (tiny_folder / "masks" / "img5.png").unlink()
    with pytest.raises(
        DatasetContentError, match=r"1 images in .*images have their mask missing on disk \(first: img5\)"
    ):
        FolderDataModule(root=str(tiny_folder)).setup()


def test_folder_masks_without_images_are_counted_or_skipped(tiny_folder, caplog):
    for i in (7, 8):
        (tiny_folder / "images" / f"img{i}.png").unlink()
    with pytest.raises(
        DatasetContentError, match=r"2 masks in .*masks have their image missing on disk \(first: img7, img8\)"
    ):
        FolderDataModule(root=str(tiny_folder)).setup()
    with caplog.at_level(logging.WARNING, logger="segattn.data"):
        dm = FolderDataModule(root=str(tiny_folder), skip_missing=True)
        dm.setup()
    assert "2 masks in" in caplog.text and "skipping them" in caplog.text
    assert sum(len(dm.dataset(s)) for s in ("train", "val", "test")) == 8


def test_folder_layout_errors_name_the_missing_folder(tmp_path):
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"folder.masks is missing"):
        FolderDataModule(root=str(root)).setup()
    (root / "train" / "images").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"train.masks is missing"):
        FolderDataModule(root=str(root)).setup()


def test_folder_size_mismatch_names_both_files(tiny_folder):
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(tiny_folder / "masks" / "img2.png")
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DatasetContentError, match=r"images.img2\.png is 36x24 but its mask .*masks.img2\.png is 30x20"):
        item_named(dm, "train", "img2")


def test_folder_two_files_with_one_stem_is_an_error(tiny_folder):
    Image.new("RGB", (36, 24)).save(tiny_folder / "images" / "img1.jpg")
    with pytest.raises(DatasetContentError, match=r"two files with the stem 'img1': img1\.jpg and img1\.png"):
        FolderDataModule(root=str(tiny_folder)).setup()


def test_folder_config_mistakes_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match=r"data.in_channels: got 2"):
        FolderDataModule(root=str(tmp_path), in_channels=2)
    with pytest.raises(ValueError, match=r"class ids \[0, 3\], outside 0..1"):
        FolderDataModule(root=str(tmp_path), mask_mapping={0: 0, 255: 3}, num_classes=2)
    with pytest.raises(ValueError, match=r"class_names has 3 names for 2 classes"):
        FolderDataModule(root=str(tmp_path), class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"data.val_fraction: got 1.5"):
        FolderDataModule(root=str(tmp_path), val_fraction=1.5)


def test_folder_mapping_to_ignore_index_and_class_count(tiny_folder):
    # 0 → background, 255 → ignored; 128 → class 1: two classes, 255 left out of loss and metrics.
    mask = np.zeros((24, 36), dtype=np.uint8)
    mask[:, :10], mask[:, 30:] = 128, 255
    Image.fromarray(mask).save(tiny_folder / "masks" / "img0.png")
    dm = FolderDataModule(
        root=str(tiny_folder),
        mask_mapping={0: 0, 128: 1, 255: 255},
        ignore_index=255,
        class_names=["bg", "thing"],
        val_fraction=0.0,
        test_fraction=0.0,
        image_size=36,
    )
    assert (dm.num_classes, dm.ignore_index, dm.class_names) == (2, 255, ["bg", "thing"])
    sample = next(s for s in dm.dataset("train").samples if s.name == "img0")
    _, mapped = sample.load(False, dm.dataset("train").table)
    assert set(np.unique(mapped).tolist()) == {0, 1, 255}
    assert (mapped[:, :10] == 1).all() and (mapped[:, 30:] == 255).all()


def test_folder_masks_named_with_a_suffix_pair_with_their_images(tiny_folder, caplog):
    for path in sorted((tiny_folder / "masks").iterdir()):  # ISIC's naming: ISIC_0000000_segmentation.png
        path.rename(path.with_name(f"{path.stem}_segmentation.png"))
    with caplog.at_level(logging.INFO, logger="segattn.data.folder"):
        dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
        samples = dm.dataset("train").samples
    assert sorted(s.name for s in samples) == [f"img{i}" for i in range(10)]
    assert all(s.mask_path.name == f"{s.name}_segmentation.png" for s in samples)
    assert "named <image stem>_segmentation" in caplog.text
    explicit = FolderDataModule(root=str(tiny_folder), mask_suffix="_segmentation", val_fraction=0.0, test_fraction=0.0)
    assert sorted(s.name for s in explicit.dataset("train").samples) == [f"img{i}" for i in range(10)]
    # A mask that does not follow the names is an unpaired file, named as such.
    (tiny_folder / "masks" / "img3_segmentation.png").rename(tiny_folder / "masks" / "img3_seg.png")
    with pytest.raises(DatasetContentError, match=r"1 images in .* have their mask missing on disk \(first: img3\)"):
        FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0).dataset("train")
    # Endings as common: the shortest (the longest image stem), whatever the hash seed.
    assert mask_suffix_of(["1", "2", "10", "20"], ["10_m", "20_m"]) == "_m"
    assert mask_suffix_of(["a", "a_b"], ["a_b_mask"]) == "_mask"
    with pytest.raises(ValueError, match=r"data.mask_suffix: got 3"):
        FolderDataModule(root=str(tiny_folder), mask_suffix=3)


def test_folder_without_a_mapping_reads_binary_masks_saved_as_0_1_or_0_255(tiny_folder):
    def masks(dm):
        return {name: item_named(dm, "train", name)["mask"] for name in ("img0", "img9")}

    as_255 = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0, augment="none")
    expected = masks(as_255)
    assert as_255.mask_mapping() == {0: 0, 255: 1} and all(
        set(m.unique().tolist()) == {0, 1} for m in expected.values()
    )
    for path in (tiny_folder / "masks").iterdir():
        Image.fromarray((np.array(Image.open(path)) > 0).astype(np.uint8)).save(path)
    as_01 = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0, augment="none")
    got = masks(as_01)
    assert as_01.mask_mapping() == {0: 0, 1: 1} and as_01.num_classes == 2
    assert all(torch.equal(got[name], expected[name]) for name in expected)


def test_folder_without_a_mapping_reads_jpeg_masks_as_binary_from_128(tiny_folder):
    # Colour JPEG masks, as Kvasir-SEG ships them: lossy values around every edge, R, G, B unequal.
    expected = {}
    for path in sorted((tiny_folder / "masks").iterdir()):
        binary = np.array(Image.open(path)) > 0
        colour = np.where(binary[..., None], np.array([255, 235, 215]), np.array([0, 10, 20])).astype(np.uint8)
        Image.fromarray(colour).save(path.with_suffix(".jpg"), quality=70)
        path.unlink()
        jpeg = np.asarray(Image.open(path.with_suffix(".jpg")))
        assert len(np.unique(jpeg)) > 2 and not (jpeg == jpeg[..., :1]).all()  # what the test is about
        expected[path.stem] = torch.from_numpy(
            (np.asarray(Image.open(path.with_suffix(".jpg")).convert("L")) >= 128).astype(np.int64)
        )
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0, augment="none", image_size=36)
    for name in ("img0", "img9"):
        sample = next(s for s in dm.dataset("train").samples if s.name == name)
        _, mask = sample.load(False, dm.dataset("train").table)
        assert torch.equal(torch.from_numpy(mask), expected[name])
    assert dm.num_classes == 2 and dm.mask_mapping()[127] == 0 and dm.mask_mapping()[128] == 1
    # An unreadable file among them does not change the reading (the data check names it).
    (tiny_folder / "masks" / "img5.jpg").write_bytes(b"")
    assert infer_binary_mapping(sorted((tiny_folder / "masks").iterdir()), tiny_folder) == dm.mask_mapping()
    # JPEGs saved from 0/1 arrays (cv2.imwrite of a label array): foreground from 1 up, not 128.
    for path in (tiny_folder / "masks").glob("img[0-4].jpg"):
        Image.fromarray((np.asarray(Image.open(path).convert("L")) >= 128).astype(np.uint8)).save(path, quality=70)
    small = sorted((tiny_folder / "masks").glob("img[0-4].jpg"))
    assert max(int(np.asarray(Image.open(p)).max()) for p in small) < 128
    mapping = infer_binary_mapping(small, tiny_folder)
    assert (mapping[0], mapping[1], mapping[127]) == (0, 1, 1)
    exact = FolderDataModule(root=str(tiny_folder), mask_mapping={0: 0, 255: 1}, val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(
        DatasetContentError, match=r"img0\.jpg holds values .*a JPEG mask.*leave data\.mask_mapping null"
    ):
        item_named(exact, "train", "img0")


def test_folder_without_a_mapping_refuses_other_values_and_suggests_one(tiny_folder):
    mask = np.zeros((24, 36), dtype=np.uint8)
    mask[:, 10:20], mask[:, 20:] = 1, 2
    Image.fromarray(mask).save(tiny_folder / "masks" / "img3.png")
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(
        DatasetContentError,
        match=r"hold the values 0, 1, 2, 255 \(e\.g\. 2 in .*img3\.png\).*'data\.mask_mapping=\{0:0,1:1,2:2,255:3\}'",
    ):
        dm.dataset("train")
    # Instance labels (one value per object): no per-value suggestion.
    Image.fromarray(np.arange(24 * 36, dtype=np.uint8).reshape(24, 36) % 40).save(tiny_folder / "masks" / "img3.png")
    with pytest.raises(
        DatasetContentError, match=r"0, 1, 2, .*, \.\.\. .*41 different values look like instance labels"
    ):
        FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0).dataset("train")
    # Given, a mapping is used as is.
    Image.fromarray(mask).save(tiny_folder / "masks" / "img3.png")
    given = FolderDataModule(
        root=str(tiny_folder), mask_mapping={0: 0, 1: 1, 2: 2, 255: 1}, val_fraction=0.0, test_fraction=0.0
    )
    assert set(item_named(given, "train", "img3")["mask"].unique().tolist()) == {0, 1, 2}

"""Bad and unusual input files: every error names the file (and values), odd encodings load right."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule
from segattn.data.folder import mask_suffix_of
from segattn.data.io import read_image, read_mask
from segattn.data.mask_values import infer_binary_mapping
from segattn.errors import DatasetContentError, DatasetLayoutError


def item_named(dm, split: str, name: str) -> dict:
    dataset = dm.dataset(split)
    return dataset[dataset.names.index(name)]


def test_error_classes_are_the_builtin_kinds():
    # Callers that only know the builtins (FileNotFoundError, ValueError) still catch them.
    assert issubclass(DatasetLayoutError, FileNotFoundError)
    assert issubclass(DatasetContentError, ValueError)


def test_errors_are_raised_in_setup_not_in_init(tmp_path):
    for cls in (OxfordPetsDataModule, ISBI2012DataModule, FolderDataModule):
        dm = cls(root=str(tmp_path / "nowhere"))  # no disk access yet
        assert dm.num_classes >= 2 and dm.in_channels in (1, 3) and len(dm.class_names) == dm.num_classes
        with pytest.raises(DatasetLayoutError, match="nowhere"):
            dm.setup()


def test_pets_missing_images_folder_is_named_with_the_fix(tiny_pets):
    for path in (tiny_pets / "images").iterdir():
        path.unlink()
    (tiny_pets / "images").rmdir()
    with pytest.raises(DatasetLayoutError) as info:
        OxfordPetsDataModule(root=str(tiny_pets)).setup()
    message = str(info.value)
    assert "lacks images" in message and str(tiny_pets / "images") in message
    assert "data.download=true" in message and "data.root=" in message


def test_pets_skip_missing_logs_the_count(tiny_pets, caplog):
    for name in ("Cat_1", "Cat_2", "Dog_0"):
        (tiny_pets / "images" / f"{name}.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="segattn.data"):
        dm = OxfordPetsDataModule(root=str(tiny_pets), skip_missing=True, val_fraction=0.0)
        dm.setup()
    assert "2 of the 10 images in annotations/trainval.txt are missing on disk (first: Cat_1, Cat_2)" in caplog.text
    assert "1 of the 4 images in annotations/test.txt" in caplog.text
    assert (len(dm.dataset("train")), len(dm.dataset("test"))) == (8, 3)
    assert "Cat_1" not in dm.dataset("train").names


def test_pets_trimap_value_outside_1_2_3_is_named(tiny_pets):
    trimap = np.array(Image.open(tiny_pets / "annotations" / "trimaps" / "Cat_5.png"))
    trimap[0, :3] = [0, 4, 4]
    Image.fromarray(trimap).save(tiny_pets / "annotations" / "trimaps" / "Cat_5.png")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    with pytest.raises(
        DatasetContentError,
        match=r"Cat_5\.png holds values \[0, 4\] that the mask mapping does not cover; mapped values: \[1, 2, 3\]",
    ):
        item_named(dm, "train", "Cat_5")


def test_corrupt_or_truncated_masks_and_images_name_the_file(tiny_pets):
    (tiny_pets / "annotations" / "trimaps" / "Cat_6.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    jpeg = (tiny_pets / "images" / "Cat_8.jpg").read_bytes()
    (tiny_pets / "images" / "Cat_8.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    with pytest.raises(DatasetContentError, match=r"cannot read mask file .*Cat_6\.png"):
        item_named(dm, "train", "Cat_6")
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*Cat_8\.jpg"):
        item_named(dm, "train", "Cat_8")


def test_isbi_mask_values_other_than_0_and_255_are_named(tiny_isbi):
    mask = np.array(Image.open(tiny_isbi / "train" / "masks" / "03.png"))
    mask[5, 5], mask[6, 6] = 128, 1
    Image.fromarray(mask).save(tiny_isbi / "train" / "masks" / "03.png")
    dm = ISBI2012DataModule(root=str(tiny_isbi), val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DatasetContentError, match=r"03\.png holds values \[1, 128\] .* mapped values: \[0, 255\]"):
        item_named(dm, "train", "03")


def test_isbi_missing_root_names_it_and_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetLayoutError) as info:
        ISBI2012DataModule(root=str(tmp_path / "isbi")).setup()
    message = str(info.value)
    assert str(tmp_path / "isbi") in message and "train/images/<id>.png" in message and "data.root=" in message


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


# --- odd encodings -------------------------------------------------------------------------------------


def test_one_bit_and_palette_masks_read_as_their_values(tmp_path):
    bits = np.zeros((6, 8), dtype=bool)
    bits[2:4, 3:6] = True
    Image.fromarray(bits).save(tmp_path / "one_bit.png")
    assert Image.open(tmp_path / "one_bit.png").mode == "1"
    assert np.array_equal(read_mask(tmp_path / "one_bit.png"), bits.astype(np.uint8) * 255)

    palette = Image.fromarray(bits.astype(np.uint8) * 2, mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(read_mask(tmp_path / "palette.png"), np.asarray(palette))


def test_gif_masks_read_as_grey_values_not_palette_indices(tmp_path):
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2:4, 3:6] = 255
    Image.fromarray(mask).save(tmp_path / "manual.gif")  # DRIVE's annotations: GIF
    assert np.asarray(Image.open(tmp_path / "manual.gif")).max() == 1  # the encoder's palette index
    assert np.array_equal(read_mask(tmp_path / "manual.gif"), mask)


def test_grey_rgb_masks_are_accepted_but_colour_masks_are_an_error(tmp_path):
    grey = np.stack([np.array([[0, 255], [255, 0]], dtype=np.uint8)] * 3, axis=-1)
    Image.fromarray(grey).save(tmp_path / "grey_rgb.png")
    assert np.array_equal(read_mask(tmp_path / "grey_rgb.png"), grey[..., 0])
    colour = grey.copy()
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(DatasetContentError, match=r"mask .*colour\.png is a colour image"):
        read_mask(tmp_path / "colour.png")


def test_wide_grey_images_are_stretched_by_their_own_percentiles(tmp_path):
    # 12-bit data in a 16-bit file: a ramp over 0..4000 with two hot pixels at the type's maximum.
    ramp = np.linspace(0, 4000, 1000).round().astype(np.uint16)
    ramp[[10, 500]] = 65535
    Image.fromarray(ramp.reshape(20, 50)).save(tmp_path / "wide.png")
    grey = read_image(tmp_path / "wide.png", grey=True)
    low, high = np.percentile(ramp.astype(np.float64), (1.0, 99.8))
    expected = (
        np.rint(np.clip((ramp.astype(np.float64) - low) / (high - low), 0, 1) * 255).astype(np.uint8).reshape(20, 50)
    )
    assert grey.dtype == np.uint8 and np.array_equal(grey, expected)
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200  # full contrast, not 16 levels
    assert np.array_equal(read_image(tmp_path / "wide.png"), np.repeat(grey[..., None], 3, axis=2))
    # Float TIFFs read the same way; without contrast an image is 0; NaN is refused, naming the file.
    Image.fromarray(ramp.reshape(20, 50).astype(np.float32) / 7.0).save(tmp_path / "float.tif")
    assert np.array_equal(read_image(tmp_path / "float.tif", grey=True), expected)
    Image.fromarray(np.full((4, 5), 3000, dtype=np.uint16)).save(tmp_path / "flat.png")
    assert not read_image(tmp_path / "flat.png", grey=True).any()
    # Sparse bright cells on a flat background (percentiles equal): the minimum and maximum are used.
    sparse = np.full((100, 100), 100, dtype=np.uint16)
    sparse[:2, :5] = 4000
    Image.fromarray(sparse).save(tmp_path / "sparse.png")
    assert np.array_equal(
        read_image(tmp_path / "sparse.png", grey=True), np.where(sparse == 4000, 255, 0).astype(np.uint8)
    )
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(DatasetContentError, match=r"nan\.tif has NaN or infinite pixel values"):
        read_image(tmp_path / "nan.tif")


def test_sixteen_bit_masks_keep_small_values_and_reject_large_ones(tiny_folder):
    mask = (np.array(Image.open(tiny_folder / "masks" / "img4.png")) > 0).astype(np.uint16) * 255
    Image.fromarray(mask).save(tiny_folder / "masks" / "img4.png")
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    assert set(item_named(dm, "train", "img4")["mask"].unique().tolist()) <= {0, 1}
    mask[0, 0] = 1000
    Image.fromarray(mask).save(tiny_folder / "masks" / "img4.png")
    with pytest.raises(DatasetContentError, match=r"img4\.png holds values \[1000\]"):
        item_named(
            FolderDataModule(root=str(tiny_folder), mask_mapping={0: 0, 255: 1}, val_fraction=0.0, test_fraction=0.0),
            "train",
            "img4",
        )
    # 16-bit values map like 8-bit ones (0/65535 masks, label images with more than 255 values).
    Image.fromarray(((mask > 0) * 65535).astype(np.uint16)).save(tiny_folder / "masks" / "img4.png")
    wide = FolderDataModule(
        root=str(tiny_folder), mask_mapping={0: 0, 255: 1, 65535: 1}, val_fraction=0.0, test_fraction=0.0
    )
    sample = next(s for s in wide.dataset("train").samples if s.name == "img4")
    assert np.array_equal(sample.load(False, wide.dataset("train").table)[1], (mask > 0).astype(np.int64))
    with pytest.raises(DatasetContentError, match=r"values 0, 255, 65535 .*'data\.mask_mapping=\{0:0,255:1,65535:2\}'"):
        FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0).dataset("train")


def test_grey_and_alpha_images_load_with_the_asked_channels(tmp_path):
    Image.new("LA", (5, 4), (90, 10)).save(tmp_path / "la.png")
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "la.png").shape == (4, 5, 3)
    assert read_image(tmp_path / "rgba.png", grey=True).shape == (4, 5)
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept


def test_pets_grey_jpeg_loads_as_three_channels(tiny_pets):
    grey = np.array(Image.open(tiny_pets / "images" / "Cat_9.jpg").convert("L"))
    Image.fromarray(grey).save(tiny_pets / "images" / "Cat_9.jpg", format="JPEG")
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=16, val_fraction=0.0)
    item = item_named(dm, "train", "Cat_9")
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32


def test_missing_file_at_read_time_is_a_content_error(tiny_folder):
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    Path(tiny_folder / "images" / "img6.png").unlink()  # removed after setup
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*img6\.png"):
        item_named(dm, "train", "img6")

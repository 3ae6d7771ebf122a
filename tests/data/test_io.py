"""segattn.data.io: reading image and mask files, odd encodings included, with errors naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segattn.data import FolderDataModule, OxfordPetsDataModule
from segattn.data.io import read_image, read_mask, set_max_pixels
from segattn.errors import DatasetContentError
from tests.helpers.data import item_named


def test_files_that_are_not_what_their_extension_says_load_as_rgb(tiny_pets):
    # A PNG with alpha and a GIF with a palette, both saved as .jpg (as in the real dataset).
    rgba = Image.new("RGBA", (40, 30), (10, 200, 30, 128))
    rgba.save(tiny_pets / "images" / "Cat_0.jpg", format="PNG")
    Image.new("P", (42, 31), 3).save(tiny_pets / "images" / "Cat_1.jpg", format="GIF")
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=16, val_fraction=0.0)
    items = {it["name"]: it for it in (dm.dataset("train")[i] for i in range(len(dm.dataset("train"))))}
    assert items["Cat_0"]["image"].shape == (3, 16, 16)
    assert items["Cat_1"]["image"].shape == (3, 16, 16)


def test_corrupt_image_error_names_the_file(tiny_pets):
    (tiny_pets / "images" / "Cat_2.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    index = dm.dataset("train").names.index("Cat_2")
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*Cat_2\.jpg"):
        dm.dataset("train")[index]


def test_corrupt_or_truncated_masks_and_images_name_the_file(tiny_pets):
    (tiny_pets / "annotations" / "trimaps" / "Cat_6.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    jpeg = (tiny_pets / "images" / "Cat_8.jpg").read_bytes()
    (tiny_pets / "images" / "Cat_8.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    with pytest.raises(DatasetContentError, match=r"cannot read mask file .*Cat_6\.png"):
        item_named(dm, "train", "Cat_6")
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*Cat_8\.jpg"):
        item_named(dm, "train", "Cat_8")


def test_missing_file_at_read_time_is_a_content_error(tiny_folder):
    dm = FolderDataModule(root=str(tiny_folder), val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    Path(tiny_folder / "images" / "img6.png").unlink()  # removed after setup
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*img6\.png"):
        item_named(dm, "train", "img6")


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


def test_grey_and_alpha_images_load_with_the_asked_channels(tmp_path):
    Image.new("LA", (5, 4), (90, 10)).save(tmp_path / "la.png")
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "la.png").shape == (4, 5, 3)
    assert read_image(tmp_path / "rgba.png", grey=True).shape == (4, 5)
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept


# --- reading what files are: orientation, pages, depth, formats, size guard ---------------------------


def _exif_rotated(path, array, orientation):
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes())


def test_exif_orientation_is_applied_to_images_and_masks_alike(tmp_path, caplog):
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:, :8] = 255  # a bright band on the stored left edge
    _exif_rotated(tmp_path / "photo.jpg", stored, 6)  # 6: shown turned 90° clockwise
    mask = np.zeros((32, 48), dtype=np.uint8)
    mask[:, :8] = 1
    _exif_rotated(tmp_path / "photo_mask.png", mask, 6)
    with caplog.at_level(logging.INFO, logger="segattn.data.io"):
        image, label = read_image(tmp_path / "photo.jpg"), read_mask(tmp_path / "photo_mask.png")
    assert image.shape == (48, 32, 3) and label.shape == (48, 32)  # as viewers show it
    assert image[:8, :, 0].mean() > 200 and image[-8:, :, 0].mean() < 50  # the band is now at the top
    assert (label[:8] == 1).all() and (label[8:] == 0).all()
    assert "EXIF orientation" in caplog.text and "photo.jpg" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="segattn.data.io"):
        read_image(tmp_path / "photo.jpg")
    assert "EXIF orientation" not in caplog.text  # logged once per folder


def test_images_without_orientation_read_as_stored(tmp_path):
    array = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    Image.fromarray(array).save(tmp_path / "plain.png")
    assert np.array_equal(read_image(tmp_path / "plain.png"), array)


def test_a_multi_page_tiff_is_refused_with_its_page_count(tmp_path):
    page = Image.fromarray(np.zeros((16, 16), dtype=np.uint8))
    page.save(tmp_path / "volume.tif", save_all=True, append_images=[page, page])
    for reader in (read_image, read_mask):
        with pytest.raises(DatasetContentError, match=r"volume\.tif holds 3 pages .* one image per file"):
            reader(tmp_path / "volume.tif")


def test_sixteen_bit_colour_is_stretched_not_cut_to_its_high_byte(tmp_path):
    values = np.zeros((8, 8, 3), dtype=np.uint16)
    values[:4] = (4095, 2048, 0)  # 12-bit data in a 16-bit file
    cv2.imwrite(str(tmp_path / "rgb16.png"), values[..., ::-1])  # OpenCV writes BGR
    image = read_image(tmp_path / "rgb16.png")
    assert image.dtype == np.uint8 and image.shape == (8, 8, 3)
    assert image[0, 0, 0] == 255 and 120 < image[0, 0, 1] < 135 and image[0, 0, 2] == 0  # colour balance kept
    assert image[-1, -1].max() == 0


def test_webp_images_are_read(tmp_path):
    array = np.full((12, 10, 3), 77, dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "a.webp", lossless=True)
    assert np.array_equal(read_image(tmp_path / "a.webp"), array)


def test_the_size_guard_names_the_setting_that_lifts_it(tmp_path):
    Image.fromarray(np.zeros((40, 50), dtype=np.uint8)).save(tmp_path / "big.png")
    try:
        set_max_pixels(1000)
        with pytest.raises(DatasetContentError, match=r"50×40 = 2,000 pixels, .* inference\.max_pixels=2000"):
            read_image(tmp_path / "big.png")
        set_max_pixels(2000)
        assert read_image(tmp_path / "big.png", grey=True).shape == (40, 50)
    finally:
        set_max_pixels(None)


def test_the_shipped_datasets_read_exactly_as_pillow_stores_them(real_data_dir):
    """No file of Oxford-IIIT Pet, GlaS or ISBI-2012 carries an orientation, pages or wide colour:
    reading them gives Pillow's own pixels, unrotated."""
    images = sorted((real_data_dir / "oxford-pets" / "images").glob("*.jpg"))[:40]
    images += sorted((real_data_dir / "glas").glob("*/images/*.jpg"))[:20]
    masks = sorted((real_data_dir / "oxford-pets" / "annotations" / "trimaps").glob("*.png"))[:40]
    masks += sorted((real_data_dir / "glas").glob("*/masks/*.png"))[:20]
    masks += sorted((real_data_dir / "isbi2012").glob("train/masks/*.png"))[:5]
    assert len(images) >= 40 and len(masks) >= 45
    for path in images:
        with Image.open(path) as image:
            assert np.array_equal(read_image(path), np.asarray(image.convert("RGB"))), path
    for path in masks:
        with Image.open(path) as mask:
            assert np.array_equal(read_mask(path), np.asarray(mask)), path

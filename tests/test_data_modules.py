"""Data modules: layouts, labels, splits, augmentation alignment and precise errors on bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule, SyntheticDataModule
from segattn.data.splits import natural_key
from segattn.errors import DatasetContentError, DatasetLayoutError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


def data_config(name: str, data_dir: Path, **overrides) -> object:
    """A data YAML composed the way Hydra does, with ``paths.data_dir`` set, then instantiated."""
    cfg = OmegaConf.create(
        {"paths": {"data_dir": str(data_dir)}, "seed": 42, "data": OmegaConf.load(CONFIGS / f"{name}.yaml")}
    )
    for key, value in overrides.items():
        cfg.data[key] = value
    return instantiate(cfg.data)


# --- Oxford-IIIT Pet ------------------------------------------------------------------------------


def test_pets_binary_items_splits_and_labels(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.2)
    dm.setup()
    assert (dm.num_classes, dm.in_channels, dm.ignore_index, dm.class_names) == (2, 3, None, ["background", "pet"])
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 2, 4]
    item = dm.dataset("train")[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) == {0, 1}
    assert set(dm.dataset("test").names) == {f"Dog_{i}" for i in range(4)}


def test_pets_binary_counts_border_as_pet_and_trimap_keeps_three_classes(tiny_pets):
    name = "Cat_0"
    raw = np.array(Image.open(tiny_pets / "annotations" / "trimaps" / f"{name}.png"))
    binary = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.0)
    trimap = OxfordPetsDataModule(
        root=str(tiny_pets), image_size=32, val_fraction=0.0, task="trimap", ignore_border=True
    )
    sample = next(s for s in binary.dataset("train").samples if s.name == name)
    _, b = sample.load(False, binary.dataset("train").table)
    _, t = sample.load(False, trimap.dataset("train").table)
    assert np.array_equal(b, (raw != 2).astype(np.int64))  # pet = trimap 1 and 3
    assert np.array_equal(t, np.select([raw == 1, raw == 2, raw == 3], [1, 0, 2]))
    assert trimap.ignore_index == 2 and trimap.num_classes == 3
    # Binary with ignore_border: the border is left out (label 255, the ignore_index), not counted as pet.
    ignored = OxfordPetsDataModule(root=str(tiny_pets), image_size=32, val_fraction=0.0, ignore_border=True)
    _, i = sample.load(False, ignored.dataset("train").table)
    assert (raw == 3).any() and np.array_equal(i, np.select([raw == 1, raw == 2, raw == 3], [1, 0, 255]))
    assert ignored.ignore_index == 255 and ignored.num_classes == 2 and binary.ignore_index is None


def test_pets_root_may_hold_the_torchvision_download_folder(tiny_pets, tmp_path):
    parent = tmp_path / "download-root"
    parent.mkdir()
    (parent / "oxford-iiit-pet").symlink_to(tiny_pets, target_is_directory=True)
    dm = OxfordPetsDataModule(root=str(parent), image_size=32)
    assert len(dm.dataset("test")) == 4


def test_splits_are_deterministic_by_seed(tiny_pets):
    names = lambda seed: OxfordPetsDataModule(root=str(tiny_pets), seed=seed, val_fraction=0.3).dataset("val").names  # noqa: E731
    assert names(1) == names(1)
    assert any(sorted(names(s)) != sorted(names(1)) for s in range(2, 8))


def test_max_samples_caps_every_split(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), max_samples=3)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 3]


def test_files_that_are_not_what_their_extension_says_load_as_rgb(tiny_pets):
    # A PNG with alpha and a GIF with a palette, both saved as .jpg (as in the real dataset).
    rgba = Image.new("RGBA", (40, 30), (10, 200, 30, 128))
    rgba.save(tiny_pets / "images" / "Cat_0.jpg", format="PNG")
    Image.new("P", (42, 31), 3).save(tiny_pets / "images" / "Cat_1.jpg", format="GIF")
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=16, val_fraction=0.0)
    items = {it["name"]: it for it in (dm.dataset("train")[i] for i in range(len(dm.dataset("train"))))}
    assert items["Cat_0"]["image"].shape == (3, 16, 16)
    assert items["Cat_1"]["image"].shape == (3, 16, 16)


def test_unknown_task_is_a_clear_error(tiny_pets):
    with pytest.raises(ValueError, match=r"data.task: got 'segment'; allowed: binary, trimap"):
        OxfordPetsDataModule(root=str(tiny_pets), task="segment")


# --- bad input --------------------------------------------------------------------------------------


def test_missing_root_says_what_layout_and_how_to_get_it(tmp_path):
    dm = OxfordPetsDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetLayoutError) as info:
        dm.setup()
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "annotations/trimaps" in message
    assert "data.download=true" in message and "data.root=" in message


def test_missing_layout_part_is_named(tiny_pets):
    (tiny_pets / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"lacks annotations/test.txt"):
        OxfordPetsDataModule(root=str(tiny_pets)).setup()


def test_listed_but_missing_files_are_counted_and_named_or_skipped(tiny_pets, caplog):
    (tiny_pets / "images" / "Cat_3.jpg").unlink()
    (tiny_pets / "annotations" / "trimaps" / "Cat_7.png").unlink()
    with pytest.raises(
        DatasetContentError,
        match=r"2 of the 10 images in annotations/trainval.txt are missing on disk \(first: Cat_3, Cat_7\)",
    ):
        OxfordPetsDataModule(root=str(tiny_pets)).setup()
    with caplog.at_level(logging.WARNING):
        dm = OxfordPetsDataModule(root=str(tiny_pets), skip_missing=True, val_fraction=0.0)
        assert len(dm.dataset("train")) == 8
    assert "skipping them" in caplog.text


def test_corrupt_image_error_names_the_file(tiny_pets):
    (tiny_pets / "images" / "Cat_2.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    index = dm.dataset("train").names.index("Cat_2")
    with pytest.raises(DatasetContentError, match=r"cannot read image file .*Cat_2\.jpg"):
        dm.dataset("train")[index]


def test_size_mismatch_names_both_files_and_sizes(tiny_pets):
    Image.fromarray(np.full((10, 12), 2, dtype=np.uint8)).save(tiny_pets / "annotations" / "trimaps" / "Cat_4.png")
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.0)
    index = dm.dataset("train").names.index("Cat_4")
    with pytest.raises(DatasetContentError, match=r"Cat_4\.jpg is 48x34 but its mask .*Cat_4\.png is 12x10"):
        dm.dataset("train")[index]


def test_mask_values_outside_the_mapping_name_file_and_values(tiny_folder):
    Image.fromarray(np.array([[0, 255, 7], [128, 0, 0]], dtype=np.uint8).repeat(12, 0).repeat(12, 1)).save(
        tiny_folder / "masks" / "img3.png"
    )
    Image.new("RGB", (36, 24)).save(tiny_folder / "images" / "img3.png")
    dm = FolderDataModule(root=str(tiny_folder), mask_mapping={0: 0, 255: 1}, val_fraction=0.0, test_fraction=0.0)
    index = dm.dataset("train").names.index("img3")
    with pytest.raises(
        DatasetContentError,
        match=r"img3\.png holds values \[7, 128\] that the mask mapping does not cover; mapped values: \[0, 255\]",
    ):
        dm.dataset("train")[index]


# --- ISBI-2012 and folders -----------------------------------------------------------------------------


def test_isbi_membrane_is_class_one_and_slices_split_three_ways(tiny_isbi):
    dm = ISBI2012DataModule(root=str(tiny_isbi), image_size=32)
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [6, 2, 2]
    all_names = sum((dm.dataset(s).names for s in ("train", "val", "test")), [])
    assert sorted(all_names) == [f"{i:02d}" for i in range(10)]
    item = dm.dataset("val")[0]
    raw = np.array(Image.open(tiny_isbi / "train" / "masks" / f"{item['name']}.png"))
    assert item["image"].shape == (1, 32, 32)
    assert torch.equal(item["mask"], torch.from_numpy((raw == 0).astype(np.int64)))


def test_isbi_test_slices_are_the_last_by_number_also_without_zero_padding(tiny_isbi):
    # zhixuhao/unet's PNG export names the slices 0.png ... 29.png: as text, 9 would sort last.
    # Here slices 5..14: as text 10..14 would come first and 7, 8, 9 last.
    for folder in ("images", "masks"):
        for path in (tiny_isbi / "train" / folder).iterdir():
            path.rename(path.with_name(f"{int(path.stem) + 5}.png"))
    dm = ISBI2012DataModule(root=str(tiny_isbi), image_size=32, test_fraction=0.3)
    assert dm.dataset("test").names == ["12", "13", "14"]
    assert sorted(dm.dataset("train").names + dm.dataset("val").names, key=int) == [str(i) for i in range(5, 12)]
    assert natural_key("slice2") < natural_key("slice10") < natural_key("slice10a") and natural_key("1²")


def test_isbi_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"train/masks is missing"):
        (tmp_path / "isbi" / "train" / "images").mkdir(parents=True)
        ISBI2012DataModule(root=str(tmp_path / "isbi")).setup()


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


# --- augmentation ----------------------------------------------------------------------------------------


def assert_aligned(out: dict, step: int, mean: np.ndarray, std: np.ndarray, where: str) -> None:
    """The transformed image, made from ``mask * step``, must still encode the transformed mask.

    Pixels the bilinear image resampling blended across an edge are left out; on the rest image
    and mask agree exactly, which a shift of even one pixel would break along every edge."""
    restored = (out["image"] * std + mean) * 255
    restored = restored if restored.ndim == 2 else restored[..., 0]
    level = np.rint(restored / step)
    pure = np.abs(restored - level * step) < step / 5
    assert pure.mean() > 0.8, f"{where}: only {pure.mean():.3f} of the pixels are unblended"
    agree = (level[pure] == out["mask"][pure]).mean()
    assert agree > 0.99, f"{where}: image and mask agree on only {agree:.4f} of the unblended pixels"


def geometric_part(transform: A.Compose) -> A.Compose:
    """The pipeline without its colour transforms, which change intensities but not positions."""
    keep = [t for t in transform.transforms if not isinstance(t, (A.ColorJitter, A.RandomBrightnessContrast))]
    return A.Compose(keep)


@pytest.mark.parametrize("augment", ["light", "strong"])
@pytest.mark.parametrize("name", ["oxford_pets", "isbi2012", "folder"])
def test_augmentation_keeps_masks_aligned_and_integer(name, augment, tmp_path):
    dm = data_config(name, tmp_path, image_size=64, augment=augment)
    transform = geometric_part(dm.train_transform)
    mask = np.zeros((80, 100), dtype=np.int32)
    mask[10:60, 20:70] = 1
    mask[30:50, 40:90] = 2
    levels = mask.astype(np.uint8) * 100
    image = levels if dm.grey else np.stack([levels] * 3, axis=-1)
    normalize = next(t for t in transform.transforms if isinstance(t, A.Normalize))
    mean, std = np.array(normalize.mean).reshape(-1), np.array(normalize.std).reshape(-1)
    for trial in range(20):
        transform.set_random_seed(trial)
        out = transform(image=image, mask=mask)
        assert out["mask"].shape == (64, 64)
        assert set(np.unique(out["mask"])) <= {0, 1, 2}  # nearest neighbour: no new values
        assert_aligned(out, 100, mean, std, f"{name}, trial {trial}")


def test_augmentation_is_seeded_per_epoch_and_sample(tiny_pets):
    dm = data_config("oxford_pets", tiny_pets.parent, root=str(tiny_pets), image_size=32, augment="strong")
    dataset = dm.dataset("train")
    first, again, other_epoch = dataset[(0, 1)], dataset[(0, 1)], dataset[(1, 1)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert not torch.equal(first["image"], other_epoch["image"])


def test_data_yamls_instantiate_with_hydra(tmp_path):
    for name, cls in (
        ("oxford_pets", OxfordPetsDataModule),
        ("isbi2012", ISBI2012DataModule),
        ("folder", FolderDataModule),
        ("synthetic", SyntheticDataModule),
    ):
        dm = data_config(name, tmp_path)
        assert isinstance(dm, cls)
        assert isinstance(dm.train_transform, A.Compose) and isinstance(dm.eval_transform, A.Compose)
    assert str(data_config("oxford_pets", tmp_path).root) == str(tmp_path / "oxford-pets")


def test_synthetic_data_is_deterministic_and_learnable_shape():
    a, b = SyntheticDataModule(image_size=32, seed=3), SyntheticDataModule(image_size=32, seed=3)
    x, y = a.dataset("val")[2], b.dataset("val")[2]
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    assert x["mask"].max() >= 1
    assert SyntheticDataModule(num_classes=3, in_channels=1, image_size=16).dataset("test")[0]["image"].shape == (
        1,
        16,
        16,
    )


# --- real data (SEGATTN_DATA_DIR) ------------------------------------------------------------------------


def test_real_oxford_pets(real_data_dir):
    dm = data_config("oxford_pets", real_data_dir, num_workers=0, persistent_workers=False)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [270, 30, 297]
    again = data_config("oxford_pets", real_data_dir, num_workers=0, persistent_workers=False)
    assert again.dataset("val").names == dm.dataset("val").names
    for split in ("train", "test"):
        item = dm.dataset(split)[0]
        assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
        assert item["mask"].dtype == torch.int64 and set(item["mask"].unique().tolist()) == {0, 1}
    trimap = data_config("oxford_pets", real_data_dir, task="trimap", ignore_border=True)
    assert set(trimap.dataset("test")[0]["mask"].unique().tolist()) == {0, 1, 2}
    # Pet pixels are a sizeable part of a pet photo.
    assert 0.05 < dm.dataset("test")[5]["mask"].float().mean() < 0.95


def test_real_isbi2012(real_data_dir):
    dm = data_config("isbi2012", real_data_dir, num_workers=0, persistent_workers=False)
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [19, 5, 6]
    item = dm.dataset("test")[0]
    assert item["image"].shape == (1, 256, 256) and item["mask"].dtype == torch.int64
    membrane = item["mask"].float().mean()
    assert 0.1 < membrane < 0.35  # membrane covers 17-27 % of a slice


def test_real_pets_augmentation_keeps_alignment(real_data_dir):
    """Augment a real trimap used as its own image: the mask must follow it exactly."""
    dm = data_config("oxford_pets", real_data_dir)
    transform = geometric_part(dm.train_transform)
    path = sorted((real_data_dir / "oxford-pets" / "annotations" / "trimaps").glob("*.png"))[0]
    mask = np.array(Image.open(path)).astype(np.int32)
    image = np.stack([(mask * 80).astype(np.uint8)] * 3, axis=-1)
    mean, std = np.array(dm.train_transform.transforms[-1].mean), np.array(dm.train_transform.transforms[-1].std)
    for trial in range(5):
        transform.set_random_seed(trial)
        out = transform(image=image, mask=mask)
        assert_aligned(out, 80, mean, std, f"{path.name}, trial {trial}")

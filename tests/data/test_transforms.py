"""segattn.data.transforms: the augmentation pipelines, which keep masks aligned and integer."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from segattn.data import OxfordPetsDataModule
from segattn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_pipeline
from tests.helpers.data import data_config


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


def test_default_pipelines_resize_normalise_and_augment_only_train(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), image_size=24, val_fraction=0.2)
    test_a, test_b = dm.dataset("test")[1], dm.dataset("test")[1]
    assert torch.equal(test_a["image"], test_b["image"])  # eval: no randomness
    assert test_a["image"].shape == (3, 24, 24)
    train = dm.dataset("train")
    views = [train[(epoch, 0)]["image"] for epoch in range(4)]
    assert any(not torch.equal(views[0], v) for v in views[1:])  # train: augmented, seeded per epoch
    # ImageNet normalisation: a mid-grey image lands near (0.5 - mean) / std.
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    raw = test_a["image"] * torch.tensor(IMAGENET_STD)[:, None, None] + mean
    assert -1e-5 <= float(raw.min()) and float(raw.max()) <= 1.0 + 1e-5


@pytest.mark.parametrize("rgb", [True, False])
def test_default_train_pipeline_keeps_masks_aligned(rgb):
    # Class 2 nested in class 1, so a blend of two neighbours never looks like the third class.
    mask = np.zeros((60, 80), dtype=np.int32)
    mask[8:52, 10:70], mask[20:40, 30:55] = 1, 2
    image = (mask * 100).astype(np.uint8)
    image = np.stack([image] * 3, axis=-1) if rgb else image
    stats = ((0.0,) * 3, (1.0,) * 3) if rgb else ((0.0,), (1.0,))
    pipeline = train_pipeline(32, stats, rgb=rgb)
    geometric = A.Compose(
        [t for t in pipeline.transforms if not isinstance(t, (A.ColorJitter, A.RandomBrightnessContrast))]
    )
    for trial in range(15):
        geometric.set_random_seed(trial)
        out = geometric(image=image, mask=mask)
        restored = out["image"] * 255 if out["image"].ndim == 2 else out["image"][..., 0] * 255
        level = np.rint(restored / 100)
        pure = np.abs(restored - level * 100) < 20
        assert set(np.unique(out["mask"]).tolist()) <= {0, 1, 2}
        assert (level[pure] == out["mask"][pure]).mean() > 0.99, f"trial {trial}"


def test_augmentation_levels():
    stats = ((0.5,) * 3, (0.25,) * 3)
    kinds = lambda p: [type(t) for t in p.transforms]  # noqa: E731
    assert kinds(train_pipeline(32, stats, rgb=True, augment="none")) == [A.Resize, A.Normalize]
    assert kinds(train_pipeline(32, stats, rgb=True)) == [A.Resize, A.HorizontalFlip, A.Normalize]
    assert kinds(train_pipeline(32, stats, rgb=True, vertical_flip=True)) == [
        A.Resize,
        A.HorizontalFlip,
        A.VerticalFlip,
        A.Normalize,
    ]
    strong = kinds(train_pipeline(32, stats, rgb=True, augment="strong"))
    assert A.RandomResizedCrop in strong and A.ColorJitter in strong and A.Affine in strong
    assert train_pipeline(32, stats, rgb=True).transforms[0].interpolation == 3  # cv2.INTER_AREA: antialiased
    # The affine warp invents no labels: a mask of one class stays that class everywhere.
    warp = next(t for t in train_pipeline(32, stats, rgb=True, augment="strong").transforms if isinstance(t, A.Affine))
    warp.p = 1.0
    mask = np.full((32, 32), 2, dtype=np.uint8)
    for seed in range(5):
        warp.set_random_seed(seed)
        assert (warp(image=np.full((32, 32, 3), 100, np.uint8), mask=mask)["mask"] == 2).all()
    with pytest.raises(ValueError, match=r"data.augment: got 'heavy'; allowed: none, light, strong"):
        train_pipeline(32, stats, rgb=True, augment="heavy")


# --- real data (SEGATTN_DATA_DIR) -------------------------------------------------------------------------------------


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

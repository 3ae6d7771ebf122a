"""Splits, caps, default pipelines, loaders and configs of the data modules (beyond test_data.py)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule, SyntheticDataModule
from segattn.data.splits import seeded_cap, seeded_split
from segattn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_pipeline
from segattn.data.workers import resolve_num_workers

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"
SPLITS = ("train", "val", "test")


def names_of(dm) -> dict[str, list[str]]:
    return {s: dm.dataset(s).names for s in SPLITS}


def compose(name: str, data_dir: Path, **top) -> OmegaConf:
    """The data YAML under ``data`` beside ``paths.data_dir``, as the lead's configs compose it."""
    return OmegaConf.create(
        {"paths": {"data_dir": str(data_dir)}, **top, "data": OmegaConf.load(CONFIGS / f"{name}.yaml")}
    )


# --- splits --------------------------------------------------------------------------------------------


def test_seeded_split_is_disjoint_complete_and_independent_of_input_order():
    names = [f"n{i:02d}" for i in range(30)]
    val, test, train = seeded_split(names, [0.2, 0.2], seed=7)
    assert (len(train), len(val), len(test)) == (18, 6, 6)
    assert sorted(train + val + test) == names
    assert seeded_split(list(reversed(names)), [0.2, 0.2], seed=7) == [val, test, train]
    assert seeded_split(names, [0.2, 0.2], seed=8) != [val, test, train]
    assert seeded_split(names[:2], [0.5, 0.5], seed=0)[2] == []  # never more than there is


def test_seeded_cap_is_deterministic_ordered_and_not_just_the_head():
    items = list(range(100))
    a = seeded_cap(items, 10, seed=1, split="test")
    assert a == seeded_cap(items, 10, seed=1, split="test") and a == sorted(a) and len(a) == 10
    assert a != items[:10] and a != seeded_cap(items, 10, seed=2, split="test")
    assert seeded_cap(items, None, 1, "test") == items and seeded_cap(items[:3], 10, 1, "test") == items[:3]


def test_isbi_and_folder_splits_depend_on_the_seed_only(tiny_isbi, tiny_folder):
    for make in (
        lambda seed: ISBI2012DataModule(root=str(tiny_isbi), seed=seed),
        lambda seed: FolderDataModule(root=str(tiny_folder), seed=seed),
    ):
        first = names_of(make(1))
        assert first == names_of(make(1))
        assert any(names_of(make(seed)) != first for seed in range(2, 6))
        assert not set(first["train"]) & set(first["val"]) and not set(first["val"]) & set(first["test"])


def test_pets_test_split_is_the_official_list_and_val_comes_from_trainval(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), val_fraction=0.3, seed=5)
    split = names_of(dm)
    assert split["test"] == [f"Dog_{i}" for i in range(4)]
    assert sorted(split["train"] + split["val"]) == sorted(f"Cat_{i}" for i in range(10)) and len(split["val"]) == 3


def test_max_samples_is_the_same_subset_every_time(tiny_pets):
    a = names_of(OxfordPetsDataModule(root=str(tiny_pets), max_samples=2, seed=3))
    b = names_of(OxfordPetsDataModule(root=str(tiny_pets), max_samples=2, seed=3))
    assert a == b and [len(a[s]) for s in SPLITS] == [2, 1, 2]
    with pytest.raises(ValueError, match=r"data.max_samples: got 0"):
        OxfordPetsDataModule(root=str(tiny_pets), max_samples=0)


def test_trimap_task_without_ignore_border_keeps_border_as_a_class(tiny_pets):
    dm = OxfordPetsDataModule(root=str(tiny_pets), task="trimap", image_size=48, val_fraction=0.0)
    assert (dm.num_classes, dm.ignore_index, dm.class_names) == (3, None, ["background", "pet", "border"])
    values = set(dm.dataset("test")[0]["mask"].unique().tolist())
    assert values == {0, 1, 2}


# --- default pipelines (no transform given) -------------------------------------------------------------


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


def test_pipelines_ending_in_ToTensorV2_give_the_same_item_format(tiny_isbi):
    eval_transform = A.Compose([A.Resize(16, 16, mask_interpolation=6), A.Normalize(mean=0.5, std=0.5), ToTensorV2()])
    dm = ISBI2012DataModule(root=str(tiny_isbi), eval_transform=eval_transform)
    item = dm.dataset("val")[0]
    assert item["image"].shape == (1, 16, 16) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (16, 16) and item["mask"].dtype == torch.int64


# --- loaders ---------------------------------------------------------------------------------------------


def test_loaders_batch_items_and_only_train_shuffles(tiny_folder):
    dm = FolderDataModule(root=str(tiny_folder), image_size=16, batch_size=3, val_fraction=0.3, test_fraction=0.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["mask"].shape == (3, 16, 16)
    assert batch["image"].dtype == torch.float32 and batch["mask"].dtype == torch.int64 and len(batch["name"]) == 3
    assert sum(len(b["name"]) for b in dm.train_dataloader()) == 7  # drop_last=False
    assert [n for b in dm.val_dataloader() for n in b["name"]] == dm.dataset("val").names  # in order
    epochs = []
    for epoch in range(3):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        epochs.append([n for b in loader for n in b["name"]])
    assert all(sorted(e) == sorted(dm.dataset("train").names) for e in epochs) and len({tuple(e) for e in epochs}) > 1
    assert len(dm.test_dataloader()) == 0
    with pytest.raises(ValueError, match=r"split must be one of"):
        dm.dataset("validation")


def test_loader_settings_and_persistent_workers_need_workers():
    dm = SyntheticDataModule(num_workers=2, persistent_workers=True, pin_memory=False, batch_size=5)
    loader = dm.train_dataloader()
    assert (loader.num_workers, loader.persistent_workers, loader.batch_size) == (2, True, 5)
    assert SyntheticDataModule(num_workers=0, persistent_workers=True).test_dataloader().persistent_workers is False


# --- synthetic -------------------------------------------------------------------------------------------


def test_synthetic_defaults_names_and_splits_differ():
    dm = SyntheticDataModule()
    assert (dm.image_size, dm.num_classes, dm.in_channels, dm.seed, dm.ignore_index) == (64, 2, 3, 0, None)
    assert [len(dm.dataset(s)) for s in SPLITS] == [16, 8, 8]
    assert dm.dataset("train").names[3] == "train_0003" and dm.dataset("test").names[0] == "test_0000"
    a, b = dm.dataset("train")[0], dm.dataset("val")[0]
    assert a["image"].shape == (3, 64, 64) and not torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["mask"], SyntheticDataModule(seed=1).dataset("train")[0]["mask"])


def test_synthetic_intensity_follows_the_class():
    dm = SyntheticDataModule(num_classes=3, in_channels=1, image_size=32, num_train=6)
    means = {k: [] for k in range(3)}
    for i in range(6):
        item = dm.dataset("train")[i]
        assert item["image"].shape == (1, 32, 32)
        assert set(item["mask"].unique().tolist()) <= {0, 1, 2}
        for k in range(3):
            if (item["mask"] == k).any():
                means[k].append(float(item["image"][0][item["mask"] == k].mean()))
    averaged = [np.mean(means[k]) for k in range(3) if means[k]]
    assert averaged == sorted(averaged) and len(averaged) >= 2  # brighter for higher classes


# --- configs ---------------------------------------------------------------------------------------------


def test_yaml_seed_follows_the_run_seed_and_null_falls_back(tmp_path):
    assert instantiate(compose("oxford_pets", tmp_path, seed=7).data).seed == 7
    assert instantiate(compose("oxford_pets", tmp_path).data).seed == 42  # no run seed: the YAML default
    assert (
        instantiate(compose("oxford_pets", tmp_path, seed=None).data).seed == 42
    )  # seed: null never makes splits random
    assert instantiate(compose("synthetic", tmp_path, seed=None).data).seed == 0


def test_yaml_roots_and_loader_defaults(tmp_path):
    expected = {"oxford_pets": "oxford-pets", "isbi2012": "isbi2012", "folder": "folder"}
    for name, folder in expected.items():
        cfg = compose(name, tmp_path)
        assert cfg.data.root == str(tmp_path / folder)
        assert (cfg.data.num_workers, cfg.data.persistent_workers, cfg.data.pin_memory) == ("auto", True, None)
        dm = instantiate(cfg.data)
        assert dm.num_workers == resolve_num_workers("auto", cfg.data.cache)
        assert dm.persistent_workers == (dm.num_workers > 0)  # torch refuses persistent workers without workers
    # pin_memory null: pinned host memory exactly when CUDA is there to copy to
    assert instantiate(compose("synthetic", tmp_path).data).pin_memory == torch.cuda.is_available()
    synthetic = compose("synthetic", tmp_path).data
    assert synthetic.num_workers == 0 and "root" not in synthetic


def test_folder_yaml_normalises_by_channel_count(tiny_folder):
    cfg = compose("folder", tiny_folder.parent)
    rgb = instantiate(cfg.data)
    cfg.data.in_channels = 1
    grey = instantiate(cfg.data)
    assert tuple(np.ravel(rgb.eval_transform.transforms[-1].mean)) == pytest.approx(IMAGENET_MEAN)
    assert tuple(np.ravel(grey.eval_transform.transforms[-1].mean)) == (0.5,)
    assert grey.dataset("train")[0]["image"].shape == (1, 128, 128)
    assert rgb.dataset("train")[0]["image"].shape == (3, 128, 128)


def test_yaml_overrides_of_image_size_reach_every_transform(tmp_path):
    cfg = compose("isbi2012", tmp_path)
    cfg.data.image_size = 96
    dm = instantiate(cfg.data)
    assert (dm.train_transform.transforms[0].height, dm.train_transform.transforms[0].width) == (96, 96)
    assert (dm.eval_transform.transforms[0].height, dm.eval_transform.transforms[0].width) == (96, 96)


# --- real data (SEGATTN_DATA_DIR) ------------------------------------------------------------------------


def test_real_pets_splits_items_and_determinism(real_data_dir):
    root = real_data_dir / "oxford-pets"
    dm = OxfordPetsDataModule(root=str(root))
    split = names_of(dm)
    assert [len(split[s]) for s in SPLITS] == [270, 30, 297]
    assert not set(split["train"]) & set(split["val"]) and "Abyssinian_82" not in sum(split.values(), [])
    assert names_of(OxfordPetsDataModule(root=str(root))) == split
    assert names_of(OxfordPetsDataModule(root=str(root), seed=1))["val"] != split["val"]
    capped = OxfordPetsDataModule(root=str(root), max_samples=12, task="trimap")
    assert [len(capped.dataset(s)) for s in SPLITS] == [12, 12, 12]
    breeds = {n.rsplit("_", 1)[0] for n in capped.dataset("test").names}
    assert len(breeds) > 1  # a cap samples the (breed-sorted) official list, not its head
    item = capped.dataset("val")[0]
    assert item["image"].shape == (3, 128, 128) and item["mask"].shape == (128, 128)
    assert set(item["mask"].unique().tolist()) <= {0, 1, 2}


def test_real_pets_binary_mask_matches_the_trimap(real_data_dir):
    root = real_data_dir / "oxford-pets"
    dm = OxfordPetsDataModule(root=str(root), val_fraction=0.1)
    sample = dm.dataset("test").samples[0]
    image, mask = sample.load(False, dm.dataset("test").table)
    trimap = np.array(Image.open(sample.mask_path))
    assert image.shape[:2] == trimap.shape and image.dtype == np.uint8 and image.shape[2] == 3
    assert np.array_equal(mask, (trimap != 2).astype(np.int64))


def test_real_isbi_splits_are_disjoint_deterministic_and_membrane_is_one(real_data_dir):
    root = real_data_dir / "isbi2012"
    dm = ISBI2012DataModule(root=str(root), image_size=512)
    split = names_of(dm)
    assert [len(split[s]) for s in SPLITS] == [19, 5, 6]
    assert split["test"] == [f"{i:02d}" for i in range(24, 30)]  # a held-out block of the volume
    assert sorted(sum(split.values(), [])) == [f"{i:02d}" for i in range(30)]
    assert names_of(ISBI2012DataModule(root=str(root))) == split
    item = dm.dataset("test")[0]
    raw = np.array(Image.open(root / "train" / "masks" / f"{item['name']}.png"))
    assert item["image"].shape == (1, 512, 512) and item["image"].dtype == torch.float32
    assert torch.equal(item["mask"], torch.from_numpy((raw == 0).astype(np.int64)))
    # Measured normalisation: a slice comes out roughly zero-mean, unit-variance.
    assert abs(float(item["image"].mean())) < 0.5 and 0.5 < float(item["image"].std()) < 1.5


def test_auto_workers_follow_the_device_and_the_cache():
    # With CUDA the CPU is free to load: one worker per core but one, at most 8.
    assert resolve_num_workers("auto", cache=True, cuda=True, cpus=16) == 8
    assert resolve_num_workers("auto", cache=False, cuda=True, cpus=4) == 3
    assert resolve_num_workers("auto", cache=False, cuda=True, cpus=1) == 1
    # On the CPU alone, cached samples load fastest in the training process itself.
    assert resolve_num_workers("auto", cache=True, cuda=False, cpus=16) == 0
    assert resolve_num_workers("auto", cache=False, cuda=False, cpus=16) == 2  # decoding files overlaps training
    assert resolve_num_workers("auto", cache=False, cuda=False, cpus=2) == 0  # too few cores to share
    assert resolve_num_workers(3, cache=True, cuda=False, cpus=2) == 3  # a count is taken as given
    for bad in (-1, "four", 2.5, True):
        with pytest.raises(ValueError, match=r"data.num_workers: got .*expected an integer >= 0 or 'auto'"):
            resolve_num_workers(bad, cache=False)
    with pytest.raises(ValueError, match="data.num_workers"):
        SyntheticDataModule(num_workers="many")

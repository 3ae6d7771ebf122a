"""The data YAMLs (configs/data): they instantiate with Hydra and take the run's settings."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segattn.data import FolderDataModule, ISBI2012DataModule, OxfordPetsDataModule, SyntheticDataModule
from segattn.data.transforms import IMAGENET_MEAN
from segattn.data.workers import resolve_num_workers
from tests.helpers.data import data_config, data_yaml


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


def compose(name: str, data_dir: Path, **top) -> OmegaConf:
    """The data YAML under ``data`` beside ``paths.data_dir``, as the lead's configs compose it."""
    return OmegaConf.create({"paths": {"data_dir": str(data_dir)}, **top, "data": data_yaml(name)})


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

"""Data modules as the data YAMLs build them, their split names, and items looked up by name."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.paths import ROOT

CONFIGS = ROOT / "configs" / "data"
SPLITS = ("train", "val", "test")


def data_config(name: str, data_dir: Path, **overrides) -> object:
    """A data YAML composed the way Hydra does, with ``paths.data_dir`` set, then instantiated."""
    cfg = OmegaConf.create(
        {"paths": {"data_dir": str(data_dir)}, "seed": 42, "data": OmegaConf.load(CONFIGS / f"{name}.yaml")}
    )
    for key, value in overrides.items():
        cfg.data[key] = value
    return instantiate(cfg.data)


def names_of(dm) -> dict[str, list[str]]:
    return {s: dm.dataset(s).names for s in SPLITS}


def item_named(dm, split: str, name: str) -> dict:
    dataset = dm.dataset(split)
    return dataset[dataset.names.index(name)]

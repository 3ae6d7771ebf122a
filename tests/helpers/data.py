"""Data modules as the data YAMLs build them, their split names, and items looked up by name."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.paths import ROOT

CONFIGS = ROOT / "configs" / "data"
SPLITS = ("train", "val", "test")


def data_yaml(name: str):
    """``configs/data/<name>.yaml`` as its defaults list composes it: the shared settings of
    ``_common.yaml`` first, the source's own over them."""
    own = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert list(own.pop("defaults")) == ["_common", "_self_"], f"{name}.yaml: unexpected defaults list"
    return OmegaConf.merge(OmegaConf.load(CONFIGS / "_common.yaml"), own)


def data_config(name: str, data_dir: Path, **overrides) -> object:
    """A data YAML composed the way Hydra does, with ``paths.data_dir`` set, then instantiated."""
    cfg = OmegaConf.create({"paths": {"data_dir": str(data_dir)}, "seed": 42, "data": data_yaml(name)})
    for key, value in overrides.items():
        cfg.data[key] = value
    return instantiate(cfg.data)


def names_of(dm) -> dict[str, list[str]]:
    return {s: dm.dataset(s).names for s in SPLITS}


def item_named(dm, split: str, name: str) -> dict:
    dataset = dm.dataset(split)
    return dataset[dataset.names.index(name)]

"""One home for each default: the classes' signature defaults are the configured defaults."""

from __future__ import annotations

import inspect

from omegaconf import OmegaConf

from segattn.data import SegmentationDataModule
from segattn.models import UNetAttention
from segattn.training.module import SegmentationModule
from tests.helpers.paths import ROOT

CONFIGS = ROOT / "configs"


def signature_defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty}


def test_the_network_defaults_are_the_model_config():
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / "unet_attention.yaml"))
    cfg.pop("_target_")
    filled_from_data = {"in_channels", "num_classes"}
    defaults = signature_defaults(UNetAttention)
    assert set(cfg) == set(defaults), "the config lists every constructor setting, and only those"
    differing = {k: (v, defaults[k]) for k, v in cfg.items() if k not in filled_from_data and v != defaults[k]}
    assert differing == {}, f"config value vs class default: {differing}"


def test_the_module_defaults_are_the_module_block_of_train_yaml():
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "train.yaml"))["module"]
    defaults = signature_defaults(SegmentationModule)
    differing = {k: (v, defaults.get(k, "<not a setting>")) for k, v in cfg.items() if v != defaults.get(k, object())}
    assert differing == {}, f"config value vs class default: {differing}"


def test_the_shared_data_settings_are_the_data_module_defaults():
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIGS / "data" / "_common.yaml"))
    defaults = signature_defaults(SegmentationDataModule)
    assert set(cfg) == set(defaults), "configs/data/_common.yaml lists the shared settings, and only those"
    differing = {k: (v, defaults[k]) for k, v in cfg.items() if k != "seed" and v != defaults[k]}
    assert differing == {}, f"config value vs class default: {differing}"

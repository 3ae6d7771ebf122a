"""The training config composed as train.py composes it, and the problems its check reports."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.config import validate_train_config
from segattn.errors import ConfigError


def compose_train(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=["experiment=smoke", "paths.output_dir=/tmp/segattn-unused", *overrides],
            return_hydra_config=False,
        )


def problems_of(*overrides: str) -> str:
    cfg = compose_train(*overrides)
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    return str(info.value)

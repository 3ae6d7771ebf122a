"""Pieces shared by the commands: clean exits, device choice, rebuilding data from a checkpoint."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segattn.checkpoint import CheckpointError

log = logging.getLogger("segattn")


def run_or_exit(task: Callable[[Any], Any], cfg: Any, failures: tuple[type[BaseException], ...]) -> Any:
    """Run a command's task; a known failure ends with its one-line message and exit code 2
    instead of a stack trace (anything else still raises, with its traceback)."""
    try:
        return task(cfg)
    except failures as err:
        log.error("%s", err)
        sys.exit(2)


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu`` / ``cuda`` as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def datamodule_from_checkpoint(checkpoint: dict[str, Any], overrides: dict[str, Any] | None, path: str):
    """Instantiate the data module of the training run, with the non-null ``overrides`` applied."""
    config = (checkpoint["hyper_parameters"].get("config") or {}).get("data")
    if not config:
        raise CheckpointError(f"{path}: holds no data config to rebuild the dataset from")
    data_cfg = OmegaConf.create(config)
    for key, value in (overrides or {}).items():
        if value is not None:
            data_cfg[key] = value
    return instantiate(data_cfg)

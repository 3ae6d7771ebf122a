"""Pieces shared by the commands: clean exits, device choice, rebuilding data from a checkpoint."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segattn.config.typecheck import check_target_node
from segattn.data.settings import data_problems
from segattn.errors import CheckpointError, ConfigError, SegattnError
from segattn.files import disk_error_message, is_disk_error
from segattn.models.settings import network_depth, size_problem

log = logging.getLogger("segattn")


def run_or_exit(task: Callable[[Any], Any], cfg: Any) -> Any:
    """Run a command's task; a known failure (``segattn.errors``, a full or read-only disk, Ctrl-C)
    ends with its one-line message and exit code 2 instead of a stack trace (anything else still
    raises, with its traceback)."""
    missing = sorted(OmegaConf.missing_keys(cfg)) if OmegaConf.is_config(cfg) else []
    if missing:
        log.error(
            "missing required setting%s %s: give %s on the command line",
            "s" if len(missing) > 1 else "",
            ", ".join(missing),
            " ".join(f"{k}={REQUIRED_EXAMPLES.get(k, '...')}" for k in missing),
        )
        sys.exit(2)
    try:
        return task(cfg)
    except SegattnError as err:
        log.error("%s", clean_message(err))
        sys.exit(2)
    except KeyboardInterrupt:
        log.error("interrupted (Ctrl-C); the files written so far are complete and kept")
        sys.exit(2)
    except Exception as err:
        if is_disk_error(err):  # a full, read-only or forbidden output folder: not a bug
            log.error("%s", disk_error_message(err))
            sys.exit(2)
        raise


#: What the mandatory (``???``) settings of the commands look like, for the message when one is missing.
REQUIRED_EXAMPLES = {"ckpt_path": "<run dir>/checkpoints/best.ckpt", "input_dir": "<folder of images>"}
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def clean_message(err: BaseException) -> str:
    """The error's own message. An error raised in a DataLoader worker comes back re-raised with
    the worker's traceback inside its message; only the original message at its end is kept."""
    text = str(err)
    if _WORKER_TRACEBACK not in text:
        return text
    name = type(err).__name__
    marker = text.rfind(f"{name}: ")
    return text[marker + len(name) + 2 :].strip() if marker >= 0 else text.splitlines()[-1]


def build(node: Any, where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose refusals of a setting (ValueError, TypeError, Lightning's
    MisconfigurationException) are one ``ConfigError`` naming ``where``, not a chained traceback."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, SegattnError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError, MisconfigurationException)):
            raise ConfigError(f"{where}: {str(cause).strip()}") from None
        raise


def check_classes_match(checkpoint: dict[str, Any], datamodule: Any, path: str) -> None:
    """The data must have the classes (and channels) the checkpoint was trained on: scoring a
    two-class model against three-class masks, or the reverse, gives meaningless numbers."""
    hparams = checkpoint["hyper_parameters"]
    ckpt_classes, data_classes = list(hparams["class_names"]), list(datamodule.class_names)
    if ckpt_classes != data_classes:
        raise CheckpointError(
            f"{path}: the checkpoint was trained on the classes {ckpt_classes}, but the data as configured has "
            f"{data_classes}; evaluate it on data with the same classes (do not override data.task or "
            "data.mask_mapping to other classes)"
        )
    in_channels = hparams["net"].get("in_channels", 3)
    if in_channels != datamodule.in_channels:
        raise CheckpointError(
            f"{path}: the checkpoint takes {in_channels}-channel images, but the data as configured gives "
            f"{datamodule.in_channels}"
        )


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu`` / ``cuda`` as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: got {name!r}; allowed: auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but torch sees no CUDA device; use device=auto or device=cpu")
    return torch.device(name)


def datamodule_from_checkpoint(checkpoint: dict[str, Any], overrides: dict[str, Any] | None, path: str):
    """Instantiate the data module of the training run, with the non-null ``overrides`` applied."""
    hparams = checkpoint["hyper_parameters"]
    depth = network_depth(
        {"depth": 4, **(hparams.get("net") or {})}
    )  # a torchvision encoder's inputs are multiples of 32
    return datamodule_from_config((hparams.get("config") or {}).get("data"), overrides, path, depth)


def datamodule_from_config(config: dict[str, Any] | None, overrides: dict[str, Any] | None, path: str, depth: int = 4):
    """Instantiate a training run's data config (from a checkpoint or an exported model's
    settings, ``path`` in the message), with the non-null ``overrides`` applied and checked as
    training checks them (``depth``: the network's, which image sizes must fit)."""
    if not config:
        raise CheckpointError(f"{path}: holds no data config to rebuild the dataset from")
    data_cfg = OmegaConf.create(config)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for key, value in given.items():
        data_cfg[key] = value
    # Overrides against the data class's settings: a key it does not take (data.mask_suffix on
    # Oxford-IIIT Pet) or a value of the wrong type is one message, not a Hydra traceback.
    checked = {"_target_": data_cfg.get("_target_"), **given}
    problems = check_target_node(OmegaConf.create(checked), "data") if given else []
    if not problems and given:
        problems = [f"data.{p}" for p in data_problems(given)]
        size = given.get("image_size")
        if not problems and size is not None:
            problems = [p for p in [size_problem("data.image_size", size, depth)] if p]
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return instantiate(data_cfg)

"""Validation of the composed training config, before data loading or model building.

Types and unknown keys come from the constructors (``segattn.config.typecheck``); the rules that
tie groups together (heads must divide the channels, image size must be a multiple of 2**depth,
...) are here. All problems are reported at once, one line each, naming key, value and what is
allowed.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from segattn.config.typecheck import check_against_signature, check_target_node
from segattn.data.settings import data_problems
from segattn.errors import ConfigError
from segattn.inference import InferenceSettings
from segattn.models.settings import network_depth, network_problems, size_problem
from segattn.models.unet_attention import NETWORK_SETTINGS, UNetAttention
from segattn.training.module import MODULE_SETTINGS, SegmentationModule, module_problems
from segattn.values import is_int, is_number

TOP_LEVEL_KEYS = {
    "data",
    "model",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "module",
    "experiment",
    "task_name",
    "seed",
    "ckpt_path",
    "init_from",
    "test_after_training",
    "inference",
    "check_data",
}
#: SegmentationModule arguments that train() fills from the data and the model config.
MODULE_FILLED = ("net", "class_names", "ignore_index", "config", "inference")
#: Model arguments that train() takes from the data module.
MODEL_FILLED_FROM_DATA = ("in_channels", "num_classes")


def signature_defaults(cls) -> dict:
    """The constructor's defaults: what a config leaves out gets these."""
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty}


def validate_train_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing every problem of a composed ``train.yaml`` config."""
    problems: list[str] = []
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    for key in unknown:
        problems.append(f"{key}: unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")

    data = OmegaConf.to_container(cfg.data, resolve=True)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    module = OmegaConf.to_container(cfg.module, resolve=True)
    problems += check_target_node(cfg.data, "data")
    problems += check_target_node(
        cfg.model, "model", skip=MODEL_FILLED_FROM_DATA
    )  # checked against the data (network_kwargs)
    problems += check_target_node(cfg.trainer, "trainer", skip=("callbacks", "logger", "plugins"))
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                problems += check_target_node(node, f"{group}.{name}")
    problems += check_against_signature(module, "module", SegmentationModule, filled=MODULE_FILLED)
    network = {**signature_defaults(UNetAttention), **{k: v for k, v in model.items() if k in NETWORK_SETTINGS}}
    problems += [f"model.{p}" for p in network_problems(network)]
    problems += [f"module.{p}" for p in module_problems({k: v for k, v in module.items() if k in MODULE_SETTINGS})]
    depth, image_size = network_depth(network), data.get("image_size")
    if is_int(depth) and depth >= 1 and is_int(image_size) and image_size >= 1:
        problems += [p for p in [size_problem("data.image_size", image_size, depth)] if p]
    problems += [f"data.{p}" for p in data_problems(data)]
    problems += inference_problems(
        OmegaConf.to_container(cfg.inference, resolve=True) if cfg.get("inference") else {}, data, depth
    )

    seed = cfg.get("seed")
    if seed is not None and (not is_int(seed) or seed < 0):
        problems.append(f"seed: got {seed!r}; expected a non-negative integer or null")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(str(ckpt_path)).is_file():
        problems.append(
            f"ckpt_path: {ckpt_path} is not a file; expected the checkpoint to resume from "
            "(e.g. <run dir>/checkpoints/last.ckpt)"
        )
    init_from = cfg.get("init_from")
    if init_from is not None and not Path(str(init_from)).is_file():
        problems.append(f"init_from: {init_from} is not a file; expected a checkpoint whose weights start a new run")
    if init_from is not None and ckpt_path is not None:
        problems.append(
            "init_from and ckpt_path are both set: ckpt_path resumes a run (weights, optimiser, schedule), "
            "init_from starts a new one from weights only; give one"
        )
    problems += trainer_problems(OmegaConf.to_container(cfg.trainer, resolve=True))
    problems += run_length_problems(
        cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps", -1), module.get("scheduler")
    )
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def trainer_problems(trainer: dict) -> list[str]:
    """A run must train (at least one epoch of at least one batch) on a device that exists."""
    problems = []
    max_epochs = trainer.get("max_epochs")
    if is_int(max_epochs) and (max_epochs == 0 or max_epochs < -1):
        problems.append(
            f"trainer.max_epochs: got {max_epochs}; expected an integer >= 1 (or -1 with trainer.max_steps)"
        )
    min_epochs = trainer.get("min_epochs")
    if is_int(min_epochs) and min_epochs < 0:
        problems.append(f"trainer.min_epochs: got {min_epochs}; expected a non-negative integer")
    max_steps = trainer.get("max_steps")
    if is_int(max_steps) and max_steps == 0:
        problems.append("trainer.max_steps: got 0; expected an integer >= 1, or -1 (no limit)")
    for key in ("limit_train_batches", "limit_val_batches"):
        value = trainer.get(key)
        if is_number(value) and value <= 0:
            what = "training" if key == "limit_train_batches" else "validation (best.ckpt is chosen on it)"
            problems.append(
                f"trainer.{key}: got {value}; the run would do no {what}: expected a count >= 1 or a fraction in (0, 1]"
            )
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        problems.append(
            f"trainer.accelerator: got {accelerator} (trainer=gpu or trainer=ddp on GPUs), but torch sees no CUDA GPU "
            "on this machine; use trainer=cpu (or trainer=ddp trainer.accelerator=cpu)"
        )
    return problems


def inference_problems(inference: dict, data: dict, depth: object) -> list[str]:
    """The ``inference`` block: known keys and values; sliding windows go with patch training,
    and patches and windows fit the network (multiples of 2**depth)."""
    problems = []
    try:
        settings = InferenceSettings(**inference)
    except TypeError as err:
        allowed = ", ".join(InferenceSettings.__dataclass_fields__)
        return [f"inference: {err}; allowed keys: {allowed}"]
    except ValueError as err:
        return [str(err)]
    patch_size = data.get("patch_size")
    if patch_size and settings.mode != "sliding_window":
        problems.append(
            f"inference.mode: got {settings.mode!r} with data.patch_size={patch_size}; patch-trained models validate "
            "at native scale: set inference.mode=sliding_window"
        )
    if not patch_size and settings.mode == "sliding_window":
        problems.append(
            "inference.mode: got 'sliding_window' without data.patch_size; a run on resized images validates them at "
            "data.image_size (inference.mode=resize); set data.patch_size to train at native scale, or slide a window "
            "later with evaluate.py / segattn-predict inference.mode=sliding_window"
        )
    if is_int(depth) and depth >= 1:
        for key, value in (("data.patch_size", patch_size), ("inference.window", settings.window)):
            if is_int(value) and value >= 1:
                problems += [p for p in [size_problem(key, value, depth)] if p]
    return problems


def fitted_problems(cfg: DictConfig, datamodule, world_size: int) -> list[str]:
    """Rules that need the data module's classes and split sizes (known once it is set up)."""
    problems = []
    weights = cfg.module.get("class_weights")
    if weights is not None and len(weights) != datamodule.num_classes:
        problems.append(
            f"module.class_weights: got {len(weights)} values {list(weights)}; the data has "
            f"{datamodule.num_classes} classes {list(datamodule.class_names)}: give one weight per class, or null"
        )
    if len(datamodule.dataset("train")) == 0:
        sizes = ", ".join(f"{split} {len(datamodule.dataset(split))}" for split in ("val", "test"))
        problems.append(
            f"the training split is empty ({sizes} images): there is nothing to train on; add images, or lower "
            "data.val_fraction / data.test_fraction (each positive fraction takes at least one image)"
        )
    if len(datamodule.dataset("val")) == 0:
        root = getattr(datamodule, "root", None)
        fix = (
            f"add {Path(root) / 'val'}/images and {Path(root) / 'val'}/masks"
            if root is not None and (Path(root) / "train").is_dir()
            else "set data.val_fraction to a fraction > 0 (e.g. 0.1)"
        )
        problems.append(
            f"the validation split is empty: training would choose no best.ckpt (it keeps the best val/dice), which "
            f"evaluate.py needs; {fix}"
        )
    model = OmegaConf.to_container(cfg.model, resolve=True)
    # what the network trains on: patches when the run cuts them, else the resized images
    depth, batch_size = network_depth(model), datamodule.batch_size
    size_key = "data.patch_size" if getattr(datamodule, "patch_size", None) else "data.image_size"
    image_size = getattr(datamodule, "patch_size", None) or datamodule.image_size
    if isinstance(depth, int) and image_size // 2**depth == 1:
        per_rank = math.ceil(len(datamodule.dataset("train")) / max(1, world_size))
        if per_rank % batch_size == 1 or batch_size == 1:
            problems.append(
                f"model.depth={depth} at {size_key}={image_size} leaves a 1x1 bottleneck, and with "
                f"data.batch_size={batch_size} and {per_rank} training images per process a batch of one image comes "
                f"up, where BatchNorm has a single value per channel and fails; use {size_key} >= {2 * 2**depth}, "
                f"model.depth <= {depth - 1}, or a data.batch_size that leaves no batch of one"
            )
    return problems


def run_length_problems(max_epochs, max_steps, scheduler) -> list[str]:
    """The run must have a known length: the schedule is laid out over it (``max_epochs=-1`` means
    no limit to Lightning, ``null`` means 1000 epochs unless ``max_steps`` is set)."""
    if max_epochs is not None and not is_int(max_epochs):
        return []  # a type error, reported by the signature check
    steps_bound = is_int(max_steps) and max_steps > 0
    if max_epochs is None and not steps_bound:
        return [
            "trainer.max_epochs: got null; expected an integer >= 1 (or null/-1 together with trainer.max_steps >= 1)"
        ]
    if max_epochs == -1 and not steps_bound and scheduler != "none":
        return [
            f"trainer.max_epochs: got -1 (no limit) and trainer.max_steps is not set, but module.scheduler={scheduler} "
            "is laid out over the whole run; set trainer.max_epochs >= 1 or trainer.max_steps >= 1, "
            "or module.scheduler=none"
        ]
    return []

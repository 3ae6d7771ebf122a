"""Validation of the composed training config, before data loading or model building.

Types and unknown keys come from the constructors (``segattn.config.typecheck``); the rules that
tie groups together (heads must divide the channels, image size must be a multiple of 2**depth,
...) are here. All problems are reported at once, one line each, naming key, value and what is
allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segattn.config.typecheck import check_against_signature, check_target_node
from segattn.data.oxford_pets import TASKS as OXFORD_TASKS
from segattn.data.transforms import AUGMENTS
from segattn.errors import ConfigError
from segattn.models.cross_attention import GATE_CHANNELS
from segattn.models.unet_attention import valid_cross_attention_levels
from segattn.training.losses import LOSS_NAMES
from segattn.training.module import NONFINITE_POLICIES, SCHEDULERS, SegmentationModule

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


def attention_problems(model: dict) -> list[str]:
    """MHSA heads must divide the bottleneck's channels, and the positional encoding needs
    multiples of 4, of every attended width; MHCA heads follow from ``head_dim``."""
    problems = []
    depth, base, heads = model.get("depth"), model.get("base_channels"), model.get("heads")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (depth, base, heads)):
        return problems  # type errors are reported by the signature check
    if depth < 1:
        problems.append(f"model.depth: got {depth}; expected an integer >= 1")
    if base < 1:
        problems.append(f"model.base_channels: got {base}; expected an integer >= 1")
    deep = model.get("deep_supervision", 0)
    if isinstance(deep, int) and not isinstance(deep, bool) and depth >= 1 and not 0 <= deep < depth:
        problems.append(
            f"model.deep_supervision: got {deep}; expected an integer from 0 to model.depth - 1 = {depth - 1}"
        )
    if model.get("self_attention") and depth >= 1 and base >= 1:
        bottleneck = base * 2**depth
        if heads < 1:
            problems.append(f"model.heads: got {heads}; expected an integer >= 1")
        elif bottleneck % heads:
            valid = [h for h in range(1, min(bottleneck, 64) + 1) if bottleneck % h == 0]
            problems.append(
                f"model.heads: got {heads}, which does not divide the bottleneck's {bottleneck} channels "
                f"(model.base_channels={base} * 2**model.depth; attention splits the channels across heads); allowed heads include {valid}"
            )
    if model.get("self_attention") or model.get("cross_attention"):
        if base % 4:
            problems.append(
                f"model.base_channels: got {base}; with attention it must be a multiple of 4 (2D sine-cosine positional encoding)"
            )
    if model.get("cross_attention"):
        head_dim = model.get("head_dim", 32)
        if isinstance(head_dim, int) and not isinstance(head_dim, bool) and head_dim < 1:
            problems.append(f"model.head_dim: got {head_dim}; expected an integer >= 1")
        if model.get("max_tokens", 1) < 1:
            problems.append(f"model.max_tokens: got {model['max_tokens']}; expected an integer >= 1")
        if model.get("gate_channels", "skip") not in GATE_CHANNELS:
            problems.append(
                f"model.gate_channels: got {model.get('gate_channels')!r}; allowed: {', '.join(GATE_CHANNELS)}"
            )
    levels = model.get("cross_attention_levels")  # checked by the model even without MHCA, so here too
    if isinstance(levels, list) and depth >= 1 and not valid_cross_attention_levels(levels, depth):
        problems.append(
            f"model.cross_attention_levels: got {levels}; expected null (every level) or a non-empty list of "
            f"skip levels from 0 (full resolution) to model.depth - 1 = {depth - 1}"
        )
    return problems


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
    problems += attention_problems(model)

    depth, image_size = model.get("depth"), data.get("image_size")
    if isinstance(depth, int) and isinstance(image_size, int) and depth >= 1:
        multiple = 2**depth
        if image_size < multiple or image_size % multiple:
            problems.append(
                f"data.image_size: got {image_size}; must be a multiple of 2**model.depth = {multiple} "
                f"(nearest valid: {valid_sizes_text(image_size, multiple)})"
            )
    lr, wd = module.get("lr"), module.get("weight_decay")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr <= 0:
        problems.append(f"module.lr: got {lr}; expected a learning rate > 0")
    warmup = module.get("warmup_fraction")
    if isinstance(warmup, (int, float)) and not isinstance(warmup, bool) and not 0 <= warmup < 1:
        problems.append(f"module.warmup_fraction: got {warmup}; expected a fraction in [0, 1)")
    if isinstance(wd, (int, float)) and not isinstance(wd, bool) and wd < 0:
        problems.append(f"module.weight_decay: got {wd}; expected a value >= 0")
    if module.get("loss") not in LOSS_NAMES:
        problems.append(f"module.loss: got {module.get('loss')!r}; allowed: {', '.join(LOSS_NAMES)}")
    elif module.get("loss") == "dice" and module.get("class_weights") is not None:
        problems.append(
            "module.class_weights: they weight the cross-entropy term, and module.loss=dice has none; "
            "use module.loss=ce+dice (or ce), or module.class_weights=null"
        )
    if module.get("scheduler") not in SCHEDULERS:
        problems.append(f"module.scheduler: got {module.get('scheduler')!r}; allowed: {', '.join(SCHEDULERS)}")
    if module.get("nonfinite_loss") not in NONFINITE_POLICIES:
        problems.append(
            f"module.nonfinite_loss: got {module.get('nonfinite_loss')!r}; allowed: {', '.join(NONFINITE_POLICIES)}"
        )
    problems += data_problems(data)
    problems += inference_problems(
        OmegaConf.to_container(cfg.inference, resolve=True) if cfg.get("inference") else {}, data, model.get("depth")
    )

    seed = cfg.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        problems.append(f"seed: got {seed!r}; expected a non-negative integer or null")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(str(ckpt_path)).is_file():
        problems.append(
            f"ckpt_path: {ckpt_path} is not a file; expected the checkpoint to resume from (e.g. <run dir>/checkpoints/last.ckpt)"
        )
    init_from = cfg.get("init_from")
    if init_from is not None and not Path(str(init_from)).is_file():
        problems.append(f"init_from: {init_from} is not a file; expected a checkpoint whose weights start a new run")
    if init_from is not None and ckpt_path is not None:
        problems.append(
            "init_from and ckpt_path are both set: ckpt_path resumes a run (weights, optimiser, schedule), init_from starts a new one from weights only; give one"
        )
    for key in ("max_epochs", "min_epochs"):
        value = cfg.trainer.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < (-1 if key == "max_epochs" else 0):
            problems.append(f"trainer.{key}: got {value}; expected a non-negative integer")
    problems += run_length_problems(
        cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps", -1), module.get("scheduler")
    )
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def inference_problems(inference: dict, data: dict, depth: object) -> list[str]:
    """The ``inference`` block: known keys and values; sliding windows go with patch training,
    and patches and windows fit the network (multiples of 2**depth)."""
    from segattn.inference import InferenceSettings

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
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1:
        multiple = 2**depth
        for key, value in (("data.patch_size", patch_size), ("inference.window", settings.window)):
            if isinstance(value, int) and value % multiple:
                problems.append(
                    f"{key}: got {value}; must be a multiple of 2**model.depth = {multiple} (e.g. {max(multiple, value // multiple * multiple)})"
                )
    return problems


def fitted_problems(cfg: DictConfig, datamodule, world_size: int) -> list[str]:
    """Rules that need the data module's classes and split sizes (known once it is set up)."""
    problems = []
    weights = cfg.module.get("class_weights")
    if weights is not None and len(weights) != datamodule.num_classes:
        problems.append(
            f"module.class_weights: got {len(weights)} values {list(weights)}; the data has {datamodule.num_classes} classes "
            f"{list(datamodule.class_names)}: give one weight per class, or null"
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
    depth, image_size, batch_size = cfg.model.get("depth"), datamodule.image_size, datamodule.batch_size
    if isinstance(depth, int) and image_size // 2**depth == 1:
        per_rank = math.ceil(len(datamodule.dataset("train")) / max(1, world_size))
        if per_rank % batch_size == 1 or batch_size == 1:
            problems.append(
                f"model.depth={depth} at data.image_size={image_size} leaves a 1x1 bottleneck, and with data.batch_size={batch_size} "
                f"and {per_rank} training images per process a batch of one image comes up, where BatchNorm has a single value "
                f"per channel and fails; use data.image_size >= {2 * 2**depth}, model.depth <= {depth - 1}, or a data.batch_size "
                "that leaves no batch of one"
            )
    return problems


def valid_sizes_text(size: int, multiple: int) -> str:
    """ "64 or 128", or just "256" when the size is below the smallest multiple."""
    lo, hi = max(multiple, size // multiple * multiple), (size // multiple + 1) * multiple
    return str(lo) if lo == hi or lo == size else f"{lo} or {hi}"


def run_length_problems(max_epochs, max_steps, scheduler) -> list[str]:
    """The run must have a known length: the schedule is laid out over it (``max_epochs=-1`` means
    no limit to Lightning, ``null`` means 1000 epochs unless ``max_steps`` is set)."""

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

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
            "is laid out over the whole run; set trainer.max_epochs >= 1 or trainer.max_steps >= 1, or module.scheduler=none"
        ]
    return []


def data_problems(data: dict) -> list[str]:
    """Rules on data values that the data module's constructor would only meet later."""
    problems = []
    if data.get("_target_") == "segattn.data.OxfordPetsDataModule" and data.get("task") not in OXFORD_TASKS:
        problems.append(f"data.task: got {data.get('task')!r}; allowed: {', '.join(OXFORD_TASKS)}")
    download = data.get("download", False)
    if not (download is True or download is False or download == "auto"):
        problems.append(f"data.download: got {download!r}; allowed: true, false, auto")
    if "augment" in data and data["augment"] not in AUGMENTS:
        problems.append(f"data.augment: got {data['augment']!r}; allowed: {', '.join(AUGMENTS)}")
    for key in ("batch_size", "image_size"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            problems.append(f"data.{key}: got {value}; expected an integer >= 1")
    value = data.get("num_workers")
    if value is not None and value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        problems.append(f"data.num_workers: got {value!r}; expected an integer >= 0 or auto")
    for key in ("val_fraction", "test_fraction"):
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value < 1:
            problems.append(f"data.{key}: got {value}; expected a fraction in [0, 1)")
    return problems

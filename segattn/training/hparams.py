"""The HParams tab: a curated set of settings per run, with its best validation scores.

Lightning's own hyperparameter logging writes every constructor argument (including the whole
nested config) and, with ``default_hp_metric: false``, no metric, so TensorBoard shows "No hparams
data". Here each run writes its HParams session-start record (TensorBoard's term: the settings
that tell runs apart) once, and the scores ``val/best_dice`` and ``val/best_iou`` (val/iou at the
best-val/dice epoch) as scalars after every validation. No run writes an experiment summary:
TensorBoard then builds the table from all the runs it reads, marks the settings whose values
differ between them and lists those first (one run's summary would hide them). Integers are
written as text (TensorBoard shows numbers with three decimals: "16.000"), and a setting that does
not apply to a run (an attention setting of a plain U-Net) is left out, so its cell stays empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams as hparams_summary

from segattn.training.attention_images import metrics_step

#: HParams column → dotted key in the resolved run config.
CURATED = {
    "self_attention": "model.self_attention",
    "cross_attention": "model.cross_attention",
    "encoder": "model.encoder",
    "encoder_weights": "model.encoder_weights",
    "data": "data._target_",
    "max_epochs": "trainer.max_epochs",
    "seed": "seed",
    "lr": "module.lr",
    "image_size": "data.image_size",
    "batch_size": "data.batch_size",
    "base_channels": "model.base_channels",
    "depth": "model.depth",
    "augment": "data.augment",
    "loss": "module.loss",
    "scheduler": "module.scheduler",
    "warmup_fraction": "module.warmup_fraction",
    "weight_decay": "module.weight_decay",
    "deep_supervision": "model.deep_supervision",
    "heads": "model.heads",
    "registers": "model.registers",
    "head_dim": "model.head_dim",
    "gate_channels": "model.gate_channels",
    "gate_init": "model.gate_init",
    "gate_batchnorm": "model.gate_batchnorm",
    "cross_attention_levels": "model.cross_attention_levels",
    "max_tokens": "model.max_tokens",
    "qk_norm": "model.qk_norm",
}
#: Settings that apply only with MHSA, or only with MHCA (left empty otherwise).
MHSA_ONLY = ("heads", "registers")
MHCA_ONLY = ("head_dim", "gate_channels", "gate_init", "gate_batchnorm", "cross_attention_levels", "max_tokens")
ATTENTION_ONLY = ("qk_norm",)
UNET_ENCODER_ONLY = ("depth", "base_channels")  # a torchvision encoder decides these
METRICS = ("val/best_dice", "val/best_iou")
DATA_NAMES = {
    "OxfordPetsDataModule": "oxford_pets",
    "ISBI2012DataModule": "isbi2012",
    "FolderDataModule": "folder",
    "SyntheticDataModule": "synthetic",
}


def lookup(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
    return node


def data_name(config: dict) -> Any:
    """A readable name of the run's data: the source, with the folder or task that tells it apart
    (``KeyError`` when the config names no data source)."""
    data = config.get("data") or {}
    if not data.get("_target_"):
        return KeyError
    target = str(data["_target_"]).rsplit(".", 1)[-1]
    name = DATA_NAMES.get(target, target)
    if name == "folder" and data.get("root"):
        return f"folder {Path(str(data['root'])).name}"
    if name == "oxford_pets" and data.get("task"):
        return f"oxford_pets {data['task']}"
    return name


def curated_hparams(config: dict) -> dict[str, Any]:
    """The CURATED settings of a resolved config, as HParams values: text for booleans ("true"),
    integers ("16"), lists and null (cross_attention_levels null: "all"), floats as numbers; a
    setting missing from the config, or one of an attention part the run does not have, is left out."""
    if not isinstance(config, dict):
        raise TypeError(
            f"curated_hparams: config must be the resolved run config (a dict), got {type(config).__name__}"
        )
    mhsa, mhca = lookup(config, "model.self_attention") is True, lookup(config, "model.cross_attention") is True
    out: dict[str, Any] = {}
    for column, dotted in CURATED.items():
        node = data_name(config) if column == "data" else lookup(config, dotted)
        if node is KeyError:
            continue
        if (column in MHSA_ONLY and not mhsa) or (column in MHCA_ONLY and not mhca):
            continue
        if column in ATTENTION_ONLY and not (mhsa or mhca):
            continue
        if column in UNET_ENCODER_ONLY and lookup(config, "model.encoder") not in (KeyError, "unet"):
            continue
        if isinstance(node, bool):
            out[column] = "true" if node else "false"
        elif isinstance(node, int):
            out[column] = str(node)
        elif isinstance(node, float):
            out[column] = node
        elif node is None:
            out[column] = "all" if column == "cross_attention_levels" else "null"
        else:
            out[column] = str(node)
    return out


class HParamsLogger(Callback):
    """Writes the HParams plugin data at fit start and the best scores after each validation.

    Its state (the best scores and their epoch) is saved in checkpoints, so a resumed run keeps them."""

    def __init__(self) -> None:
        self.best_dice: float | None = None
        self.best_iou: float | None = None
        self.best_epoch: int | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = tensorboard_logger(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        config = pl_module.hparams.get("config") or {}
        _, session_start, session_end = hparams_summary(curated_hparams(config), {tag: 0.0 for tag in METRICS})
        writer = logger.experiment._get_file_writer()
        for summary in (session_start, session_end):  # no experiment summary: see the module docstring
            writer.add_summary(summary)
        writer.flush()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        if "val/dice" not in metrics:
            return
        dice = float(metrics["val/dice"])
        if dice == dice and (self.best_dice is None or dice > self.best_dice):
            self.best_dice, self.best_epoch = dice, trainer.current_epoch
            self.best_iou = float(metrics["val/iou"]) if "val/iou" in metrics else None
        logger = tensorboard_logger(trainer)
        if logger is not None and trainer.is_global_zero and self.best_dice is not None:
            values = {"val/best_dice": self.best_dice} | (
                {"val/best_iou": self.best_iou} if self.best_iou is not None else {}
            )
            logger.log_metrics(values, step=metrics_step(trainer))

    def state_dict(self) -> dict[str, Any]:
        return {"best_dice": self.best_dice, "best_iou": self.best_iou, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_dice = state_dict.get("best_dice")
        self.best_iou = state_dict.get("best_iou")
        self.best_epoch = state_dict.get("best_epoch")


def tensorboard_logger(trainer: Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

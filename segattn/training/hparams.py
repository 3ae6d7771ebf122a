"""The HParams tab: a curated set of settings per run, with its best validation scores as metrics.

Lightning's own hyperparameter logging writes every constructor argument (including the whole
nested config) and, with ``default_hp_metric: false``, no metric, so TensorBoard shows "No hparams
data". Here each run writes the plugin data once with the settings that tell the ablations apart,
and the metric tags ``val/best_dice`` and ``val/best_iou`` (val/iou at the best-val/dice epoch),
logged as scalars after every validation. A ``-m`` sweep then reads as one table.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams as hparams_summary

from segattn.training.attention_images import metrics_step

#: HParams column → dotted key in the resolved run config.
CURATED = {
    "self_attention": "model.self_attention",
    "cross_attention": "model.cross_attention",
    "heads": "model.heads",
    "head_dim": "model.head_dim",
    "gate_channels": "model.gate_channels",
    "cross_attention_levels": "model.cross_attention_levels",
    "max_tokens": "model.max_tokens",
    "depth": "model.depth",
    "base_channels": "model.base_channels",
    "deep_supervision": "model.deep_supervision",
    "data": "data._target_",
    "image_size": "data.image_size",
    "batch_size": "data.batch_size",
    "augment": "data.augment",
    "loss": "module.loss",
    "lr": "module.lr",
    "weight_decay": "module.weight_decay",
    "scheduler": "module.scheduler",
    "warmup_fraction": "module.warmup_fraction",
    "max_epochs": "trainer.max_epochs",
    "seed": "seed",
}
METRICS = ("val/best_dice", "val/best_iou")


def curated_hparams(config: dict) -> dict[str, Any]:
    """The CURATED settings of a resolved config, as HParams-friendly values (missing keys are
    left out; booleans become "true"/"false", None "null", lists text; a data target its class name)."""
    if not isinstance(config, dict):
        raise TypeError(
            f"curated_hparams: config must be the resolved run config (a dict), got {type(config).__name__}"
        )
    out: dict[str, Any] = {}
    for column, dotted in CURATED.items():
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError:
            continue
        if column == "data" and isinstance(node, str):
            node = node.rsplit(".", 1)[-1]
        if isinstance(node, bool):  # torch writes bools as numbers 0/1; text reads better and filters as categories
            node = "true" if node else "false"
        out[column] = node if isinstance(node, (int, float, str)) else ("null" if node is None else str(node))
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
        experiment, session_start, session_end = hparams_summary(curated_hparams(config), {tag: 0.0 for tag in METRICS})
        writer = logger.experiment._get_file_writer()
        for summary in (experiment, session_start, session_end):
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

"""The LightningModule: loss, optimiser and schedule, and the Dice/IoU metrics of each split."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from segattn.models import UNetAttention
from segattn.training.losses import SegmentationLoss
from segattn.training.metrics import SegmentationScores, flatten_scores

log = logging.getLogger(__name__)
SCHEDULERS = ("cosine", "onecycle", "none")
NONFINITE_POLICIES = ("error", "skip")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (the run stops; the last good checkpoint stays)."""


class SegmentationModule(L.LightningModule):
    """Trains a ``UNetAttention`` built from ``net`` (its constructor arguments).

    Keeping the network's arguments, not the network, in the hyperparameters lets ``evaluate.py``
    rebuild it from a checkpoint without unpickling or importing anything named in the file.
    """

    def __init__(
        self,
        net: dict[str, Any],
        class_names: Sequence[str],
        ignore_index: int | None = None,
        loss: str = "ce+dice",
        class_weights: Sequence[float] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        include_background: bool = False,
        compile: bool = False,
        nonfinite_loss: str = "error",
        config: dict | None = None,
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ValueError(f"module.scheduler: unknown scheduler {scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
        if nonfinite_loss not in NONFINITE_POLICIES:
            raise ValueError(f"module.nonfinite_loss: got {nonfinite_loss!r}; allowed: {', '.join(NONFINITE_POLICIES)}")
        self.save_hyperparameters()
        self.net = UNetAttention(**net)
        num_classes = self.net.num_classes
        self.criterion = SegmentationLoss(loss, num_classes, class_weights, ignore_index)
        scores = dict(num_classes=num_classes, class_names=class_names, ignore_index=ignore_index, include_background=include_background)
        self.val_scores = SegmentationScores(**scores)
        self.test_scores = SegmentationScores(**scores)
        # Kept out of the registered submodules so the state dict has the plain ``net.*`` keys.
        object.__setattr__(self, "_compiled_net", torch.compile(self.net) if compile else None)

    def forward(self, x: Tensor) -> Tensor:
        return (self._compiled_net or self.net)(x)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor | None:
        loss = self.criterion(self(batch["image"]), batch["mask"])
        if not torch.isfinite(loss):
            where = f"epoch {self.current_epoch}, global step {self.global_step}, batch {batch_idx} (images {list(batch.get('name', []))[:4]})"
            if self.hparams.nonfinite_loss == "skip":
                log.warning("Skipping a batch with non-finite loss %s at %s", loss.item(), where)
                return None  # Lightning skips the optimizer step for this batch
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at {where}; the run stopped and the last checkpoint was kept. "
                "Lower module.lr, check the data, or set module.nonfinite_loss=skip to skip such batches."
            )
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def _evaluate_batch(self, batch: dict, split: str, scores: SegmentationScores) -> None:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["mask"])
        self.log(f"{split}/loss", loss, on_epoch=True, prog_bar=split == "val", batch_size=len(batch["image"]), sync_dist=True)
        scores.update(logits.argmax(dim=1), batch["mask"])

    def _log_scores(self, split: str, scores: SegmentationScores) -> None:
        # torchmetrics gathers the counts from every process in compute(), so the values are global.
        flat = flatten_scores(scores.compute(), split)
        scores.reset()
        headline = {k: v for k, v in flat.items() if k in (f"{split}/dice", f"{split}/iou")}
        self.log_dict(headline, prog_bar=True)
        self.log_dict({k: v for k, v in flat.items() if k not in headline})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate_batch(batch, "val", self.val_scores)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val", self.val_scores)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate_batch(batch, "test", self.test_scores)

    def on_test_epoch_end(self) -> None:
        self._log_scores("test", self.test_scores)

    def total_training_steps(self) -> int:
        """Optimizer steps of the whole run, for the schedules.

        Computed from the data module's sizes rather than ``trainer.estimated_stepping_batches``,
        which builds and starts the training loader before a checkpoint's loader state is
        restored, and so would break exact mid-epoch resumption.
        """
        trainer = self.trainer
        datamodule = trainer.datamodule
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return trainer.max_steps
        if datamodule is None or not hasattr(datamodule, "dataset"):
            return int(trainer.estimated_stepping_batches)
        per_rank = math.ceil(len(datamodule.dataset("train")) / trainer.world_size)
        batches = math.ceil(per_rank / datamodule.batch_size)
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None and limit < 1.0:
            batches = int(batches * limit)
        return max(1, math.ceil(batches / trainer.accumulate_grad_batches) * max(1, trainer.max_epochs))

    def configure_optimizers(self):
        hp = self.hparams
        if hp.lr <= 0:
            raise ValueError(f"module.lr must be > 0, got {hp.lr}")
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        total_steps = self.total_training_steps()
        if hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(total_steps)))
        else:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=max(2, int(total_steps)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

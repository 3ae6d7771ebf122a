"""One line per validation epoch in the log (the progress bar overwrites itself; train.log keeps these)."""

from __future__ import annotations

import logging

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger("segattn.epochs")
SHOWN = ("val/loss", "val/dice", "val/iou")


class EpochLogger(Callback):
    """Logs ``Epoch <n>: train/loss … val/dice …`` after each validation, numbered like the progress bar.

    The train loss is this process's mean over the epoch's batches so far: Lightning's epoch mean
    is only computed after validation has run, too late for this line."""

    def __init__(self) -> None:
        self.loss_sum, self.batches, self.epoch = 0.0, 0, -1

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch != self.epoch:
            self.loss_sum, self.batches, self.epoch = 0.0, 0, trainer.current_epoch
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            # Lightning hands callbacks the loss divided by accumulate_grad_batches (what it back-propagates).
            self.loss_sum = (
                self.loss_sum + loss.detach() * trainer.accumulate_grad_batches
            )  # on the device: no host sync per step
            self.batches += 1

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = (
            [f"train/loss {float(self.loss_sum) / self.batches:.4f}"]
            if self.batches and self.epoch == trainer.current_epoch
            else []
        )
        parts += [f"{key} {float(metrics[key]):.4f}" for key in SHOWN if key in metrics]
        if parts:
            log.info("Epoch %d: %s", trainer.current_epoch, "  ".join(parts))

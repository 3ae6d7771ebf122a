"""Two CPU processes (DDP) where process 0's loss turns NaN at one step, with
``nonfinite_loss=skip``: the run must finish with finite weights. Run by tests/training/test_nonfinite.py
as a script, since Lightning's DDP launcher starts the other process by re-running it."""

import sys

import lightning as L
import torch

from segattn.data import SyntheticDataModule
from segattn.training.module import SegmentationModule


class NaNAtStep:
    def __init__(self, loss, module, step):
        self.loss, self.module, self.step = loss, module, step

    def __call__(self, logits, target):
        value = self.loss(logits, target)
        hit = self.module.global_step == self.step and self.module.global_rank == 0
        return value * float("nan") if hit else value


if __name__ == "__main__":
    L.seed_everything(0)
    data = SyntheticDataModule(image_size=32, batch_size=4)  # 16 images: 2 steps per epoch per process
    module = SegmentationModule(
        net=dict(depth=2, base_channels=8, heads=2), class_names=data.class_names, nonfinite_loss="skip"
    )
    object.__setattr__(module, "criterion", NaNAtStep(module.criterion, module, step=1))
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        strategy="ddp",
        devices=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    if trainer.global_rank == 0:
        assert trainer.global_step == 4, trainer.global_step
        assert all(torch.isfinite(p).all() for p in module.parameters())
        print("FINITE AFTER SKIP", file=sys.stderr)

"""segattn.training.epoch_log: the line logged at the end of each epoch."""

from __future__ import annotations

import pytest

from segattn.training.module import SegmentationModule


def test_the_epoch_log_line_shows_the_true_training_loss_with_gradient_accumulation(caplog):
    """Lightning hands callbacks the loss divided by accumulate_grad_batches; the line must not."""
    import logging
    import re

    import lightning as L

    from segattn.data import SyntheticDataModule
    from segattn.training.epoch_log import EpochLogger

    L.seed_everything(0)
    data = SyntheticDataModule(image_size=32, batch_size=4)  # 16 images: 4 batches
    module = SegmentationModule(net=dict(depth=2, base_channels=8, heads=2), class_names=data.class_names)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accumulate_grad_batches=2,
        callbacks=[EpochLogger()],
    )
    with caplog.at_level(logging.INFO, logger="segattn.epochs"):
        trainer.fit(module, datamodule=data)
    line = next(r.getMessage() for r in caplog.records if r.name == "segattn.epochs")
    logged = float(re.search(r"train/loss (\d+\.\d+)", line).group(1))
    assert logged == pytest.approx(float(trainer.callback_metrics["train/loss"]), abs=2e-4)

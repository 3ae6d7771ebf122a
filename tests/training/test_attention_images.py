"""segattn.training.attention_images: when figures are drawn, which images they show, and their central window."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from segattn.training.attention_images import AttentionImageLogger, is_logging_epoch


def test_figures_are_logged_every_n_epochs_and_on_the_last():
    assert [e for e in range(12) if is_logging_epoch(e, 5, 12)] == [4, 9, 11]
    assert [e for e in range(3) if is_logging_epoch(e, 5, -1)] == []


def test_figures_wait_min_interval_s_between_drawings_except_on_the_last_epoch(monkeypatch):
    """Fast epochs (a GPU, a small dataset): every 5th epoch is a logging epoch, but a drawing
    under min_interval_s after the previous one is skipped; the last epoch always draws."""
    import segattn.training.attention_images as images

    clock = [0.0]
    monkeypatch.setattr(images.time, "monotonic", lambda: clock[0])
    callback = AttentionImageLogger(every_n_epochs=5, worst_k=0, min_interval_s=30)
    drawn = []
    monkeypatch.setattr(
        callback, "log_figures", lambda writer, trainer, module, dataset: drawn.append(trainer.current_epoch)
    )
    logger = TensorBoardLogger.__new__(TensorBoardLogger)
    monkeypatch.setattr(TensorBoardLogger, "experiment", property(lambda self: None))
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=0,
        max_epochs=30,
        loggers=[logger],
        datamodule=SimpleNamespace(dataset=lambda split: [0]),
    )
    module = SimpleNamespace(training=False, eval=lambda: None, train=lambda mode: None)
    for epoch in range(30):  # 4 s per epoch: logging epochs 4, 9, 14, ... are 20 s apart
        trainer.current_epoch = epoch
        callback.on_validation_epoch_start(trainer, module)
        callback.on_validation_end(trainer, module)
        clock[0] += 4.0
    assert drawn == [4, 14, 24, 29]  # 9, 19 skipped (20 s after a drawing), the last epoch (29) always
    with pytest.raises(ValueError, match="min_interval_s"):
        AttentionImageLogger(min_interval_s=-1)


def test_worst_images_are_ranked_from_the_validation_steps_own_predictions(monkeypatch):
    callback = AttentionImageLogger(every_n_epochs=5, worst_k=1)
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        current_epoch=4,
        max_epochs=20,
        datamodule=SimpleNamespace(ignore_index=None),
    )
    module = SimpleNamespace(net=SimpleNamespace(num_classes=2))
    mask = torch.zeros(2, 4, 4, dtype=torch.long)
    mask[:, :2] = 1
    predictions = torch.stack([mask[0], 1 - mask[1]])  # "a" exactly right, "b" exactly wrong
    callback.on_validation_epoch_start(trainer, module)  # epoch 5 (counting from 1): a drawing epoch
    callback.on_validation_batch_end(
        trainer, module, {"predictions": predictions}, {"name": ["a", "b"], "mask": mask}, 0
    )
    assert callback.scores_from_validation(SimpleNamespace(names=["b", "a"])) == [0.0, 1.0]  # in the dataset's order
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "b", "c"])) is None  # "c" was not validated
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "a"])) is None  # names must identify images
    trainer.current_epoch = 5  # not a drawing epoch: nothing is collected
    callback.on_validation_epoch_start(trainer, module)
    callback.on_validation_batch_end(
        trainer, module, {"predictions": predictions}, {"name": ["a", "b"], "mask": mask}, 0
    )
    assert callback.scores_from_validation(SimpleNamespace(names=["a", "b"])) is None


def test_central_window_has_one_size_for_images_of_any_size():
    from segattn.training.attention_images import central_window

    items = [
        {"image": torch.randn(3, h, w), "mask": torch.zeros(h, w, dtype=torch.long), "name": "x"}
        for h, w in [(300, 500), (20, 30), (64, 64)]
    ]
    windows = [central_window(it, 50, 16, pad_label=255) for it in items]
    assert all(w["image"].shape == (3, 64, 64) and w["mask"].shape == (64, 64) for w in windows)
    assert (windows[1]["mask"] == 255).sum() == 64 * 64 - 20 * 30  # padding is ignored
    torch.stack([w["image"] for w in windows])  # one batch

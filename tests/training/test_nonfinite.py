"""segattn.training.nonfinite: a non-finite loss stops the run naming its step, or skips the batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


class _NaNAtStep:
    """Wraps a loss so that it returns NaN at one global step."""

    def __init__(self, loss, module, step: int) -> None:
        self.loss, self.module, self.step = loss, module, step

    def __call__(self, logits, target):
        value = self.loss(logits, target)
        return value * float("nan") if self.module.global_step == self.step else value


def _fit_with_nan(
    tmp_path: Path,
    policy: str,
    defer: bool | None = None,
    step: int = 5,
    checkpoints: bool = True,
    validate: bool = True,
):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from segattn.data import SyntheticDataModule
    from segattn.training.atomic_checkpoint_io import AtomicCheckpointIO
    from segattn.training.module import SegmentationModule

    L.seed_everything(0)
    data = SyntheticDataModule(image_size=32, batch_size=4)  # 16 images: 4 steps per epoch
    module = SegmentationModule(
        net=dict(depth=2, base_channels=8, heads=2), class_names=data.class_names, nonfinite_loss=policy
    )
    module.defer_finite_check = defer
    object.__setattr__(module, "criterion", _NaNAtStep(module.criterion, module, step=step))
    folder = tmp_path / "checkpoints"
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=checkpoints,
        limit_val_batches=1.0 if validate else 0,
        callbacks=[ModelCheckpoint(dirpath=folder, every_n_train_steps=1, save_top_k=0, save_last=True)]
        if checkpoints
        else [],
    )
    return trainer, module, data, folder / "last.ckpt"


@pytest.mark.parametrize("defer", [False, True], ids=["checked-at-once", "checked-on-the-device"])
def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path, defer):
    """Deferred (as on a GPU, where reading the loss every step would stall the host), the
    non-finite step is still named and no checkpoint written after it holds its update."""
    from segattn.errors import NonFiniteLossError

    trainer, module, data, last = _fit_with_nan(tmp_path, "error", defer)
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 1, global step 5, batch 1"):
        trainer.fit(module, datamodule=data)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 5  # the last good step, loadable
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_a_deferred_check_names_the_bad_step_found_steps_later(tmp_path):
    """Without checkpoints the loss is read at the first validation: two steps after the bad one,
    which the message still names."""
    from segattn.errors import NonFiniteLossError

    trainer, module, data, _ = _fit_with_nan(
        tmp_path, "error", defer=True, step=1, checkpoints=False
    )  # 4 steps per epoch
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 0, global step 1, batch 1"):
        trainer.fit(module, datamodule=data)
    assert trainer.global_step == 4  # the epoch's steps ran on; nothing was saved


def test_a_deferred_check_still_stops_on_the_last_step_of_a_run_without_validation(tmp_path):
    from segattn.errors import NonFiniteLossError

    trainer, module, data, _ = _fit_with_nan(
        tmp_path, "error", defer=True, step=7, checkpoints=False, validate=False
    )  # 8 steps
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 1, global step 7, batch 3"):
        trainer.fit(module, datamodule=data)


def test_the_watch_names_the_first_bad_step_reads_every_max_pending_steps_and_keeps_failing():
    from segattn.errors import NonFiniteLossError
    from segattn.training.nonfinite import NonFiniteLossWatch

    watch = NonFiniteLossWatch(max_pending=3)
    watch.record(torch.tensor(0.5), 0, 0, 0, ["a"])
    watch.record(torch.tensor(0.4), 0, 1, 1, ["b"])
    watch.record(torch.tensor(0.3), 0, 2, 2, ["c"])  # the third: read and forgotten, all finite
    watch.check()
    watch.record(torch.tensor(float("inf")), 1, 3, 0, ["d"])
    watch.record(torch.tensor(float("nan")), 1, 4, 1, ["e"])
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at epoch 1, global step 3, batch 0 \(images \['d'\]\)"):
        watch.check()
    with pytest.raises(NonFiniteLossError, match="global step 3"):  # and on every later check (a save on the way out)
        watch.check()
    bounded = NonFiniteLossWatch(max_pending=2)
    bounded.record(torch.tensor(1.0), 0, 0, 0, [])
    with pytest.raises(NonFiniteLossError, match="global step 1"):
        bounded.record(torch.tensor(float("nan")), 0, 1, 1, [])  # the second step reaches max_pending: read now


def test_the_progress_bar_shows_the_step_loss_only_where_reading_it_is_free(tmp_path):
    for defer, shown, hidden in ((False, "train/loss_step", "train/loss"), (True, "train/loss", "train/loss_step")):
        trainer, module, data, _ = _fit_with_nan(
            tmp_path / str(defer), "error", defer=defer, step=-1, checkpoints=False
        )
        trainer.fit(module, datamodule=data)
        assert shown in trainer.progress_bar_metrics and hidden not in trainer.progress_bar_metrics


def test_non_finite_loss_can_skip_the_batch(tmp_path):
    trainer, module, data, last = _fit_with_nan(tmp_path, "skip")
    trainer.fit(module, datamodule=data)
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 8  # the run went on to the end
    # Had the NaN batch been back-propagated, AdamW would have turned every weight into NaN.
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.slow
def test_non_finite_loss_skip_works_with_two_processes():
    """Lightning refuses a None training_step result under DDP: the skipped batch gets a zero loss."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(root / "tests" / "scripts" / "nonfinite_skip_ddp.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Skipping a batch with non-finite loss nan" in proc.stderr and "FINITE AFTER SKIP" in proc.stderr

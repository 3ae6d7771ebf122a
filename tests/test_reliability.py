"""Config validation, atomic checkpoint writes, non-finite losses, unusable checkpoints, run directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from segattn.checkpoint import load_checkpoint
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.cli.train import check_run_directory
from segattn.config import validate_train_config
from segattn.errors import CheckpointError, ConfigError, RunDirectoryError
from segattn.training.atomic_checkpoint_io import atomic_torch_save
from segattn.training.module import module_from_checkpoint


def compose_train(*overrides: str):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=["experiment=smoke", "paths.output_dir=/tmp/segattn-unused", *overrides],
            return_hydra_config=False,
        )


def problems_of(*overrides: str) -> str:
    cfg = compose_train(*overrides)
    with pytest.raises(ConfigError) as info:
        validate_train_config(cfg)
    return str(info.value)


def test_default_and_experiment_configs_are_valid():
    for experiment in ("smoke", "pets_binary", "pets_trimap", "isbi2012"):
        validate_train_config(compose_train(f"experiment={experiment}"))
    validate_train_config(compose_train("model.cross_attention_levels=[1]"))


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.heads=3", "model.heads: got 3, which does not divide the bottleneck's 32 channels"),
        (
            "model.cross_attention_levels=[0,5]",
            "model.cross_attention_levels: got [0, 5]; expected null (every level) or a non-empty list",
        ),
        (
            "data.image_size=30",
            "data.image_size: got 30; must be a multiple of 2**model.depth = 4 (nearest valid: 28 or 32)",
        ),
        ("module.lr=-0.1", "module.lr: got -0.1; expected a learning rate > 0"),
        ("module.loss=focal", "module.loss: got 'focal'; allowed: ce, dice, ce+dice"),
        ("module.scheduler=step", "module.scheduler: got 'step'; allowed: cosine, onecycle, none"),
        ("model.depth=two", "model.depth: got 'two' (str); expected int"),
        ("module.lr=fast", "module.lr: got 'fast' (str); expected float"),
        ("+model.dropout=0.1", "model.dropout: unknown key; allowed keys:"),
        ("+module.momentum=0.9", "module.momentum: unknown key; allowed keys:"),
        ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key"),
        ("data.batch_size=0", "data.batch_size: got 0; expected an integer >= 1"),
        ("module.nonfinite_loss=ignore", "module.nonfinite_loss: got 'ignore'; allowed: error, skip"),
        ("ckpt_path=/nonexistent/last.ckpt", "ckpt_path: /nonexistent/last.ckpt is not a file"),
    ],
)
def test_bad_settings_are_named_with_value_and_what_is_allowed(override, expected):
    assert expected in problems_of(override)


def test_class_weights_without_a_cross_entropy_term_are_refused():
    assert "module.class_weights: they weight the cross-entropy term, and module.loss=dice has none" in problems_of(
        "module.loss=dice", "module.class_weights=[1.0,2.0]"
    )
    validate_train_config(
        compose_train("module.loss=ce+dice", "module.class_weights=[1.0,2.0]")
    )  # weights the CE term: fine


def test_cross_attention_levels_are_checked_even_without_cross_attention():
    """The model checks the levels whatever the switch says; the config check must catch it first."""
    assert "model.cross_attention_levels: got [9]; expected null" in problems_of(
        "model.cross_attention=false", "model.cross_attention_levels=[9]"
    )


def test_all_problems_are_reported_at_once():
    message = problems_of("model.heads=3", "module.lr=-1.0")
    assert "model.heads" in message and "module.lr" in message


def test_unknown_task_name_is_rejected_before_loading():
    message = problems_of("data=oxford_pets", "data.task=segment")
    assert "data.task" in message and "'segment'" in message and "binary" in message


def test_atomic_save_keeps_the_previous_checkpoint_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # what a kill in the middle of a write leaves
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(100)}, "hyper_parameters": {}}, good)
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: not a readable checkpoint"):
        load_checkpoint(bad)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.ckpt"):
        load_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")


def _tiny_checkpoint(tmp_path: Path, **net) -> Path:
    from segattn.training.module import SegmentationModule

    net = {"in_channels": 3, "num_classes": 2, "depth": 2, "base_channels": 8, "heads": 2, **net}
    module = SegmentationModule(net=net, class_names=[f"c{i}" for i in range(net["num_classes"])])
    path = tmp_path / f"tiny_{net['num_classes']}.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def test_checkpoint_of_another_shape_or_class_count_is_refused_whole(tmp_path):
    path = _tiny_checkpoint(tmp_path)
    checkpoint = load_checkpoint(path)
    module_from_checkpoint(checkpoint, path)  # the untouched one loads
    other = load_checkpoint(_tiny_checkpoint(tmp_path, num_classes=3))
    other["hyper_parameters"]["net"]["num_classes"] = 2  # settings say 2 classes, weights have 3
    other["hyper_parameters"]["class_names"] = ["a", "b"]
    with pytest.raises(CheckpointError, match=r"with another shape .*net\.head\.weight"):
        module_from_checkpoint(other, "other.ckpt")
    partial = load_checkpoint(path)
    partial["state_dict"] = {k: v for k, v in partial["state_dict"].items() if "self_attention" not in k}
    with pytest.raises(CheckpointError, match="missing"):
        module_from_checkpoint(partial, "partial.ckpt")


def test_checkpoint_config_cannot_name_arbitrary_targets(tmp_path):
    path = _tiny_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["config"] = {"data": {"_target_": "os.system", "command": "touch /tmp/x"}}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"data\._target_ names 'os.system'"):
        load_checkpoint(path)


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    check_run_directory(run_dir, None)  # new: fine
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        check_run_directory(run_dir, None)
    check_run_directory(run_dir, str(run_dir / "checkpoints" / "last.ckpt"))  # resuming that run: fine
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"x"


def test_unwritable_run_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(RunDirectoryError, match="not writable"):
        check_run_directory(blocker / "run", None)


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

    root = Path(__file__).resolve().parents[1]
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

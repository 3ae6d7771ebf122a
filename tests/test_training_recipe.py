"""The training recipe: weight decay groups, warm-up schedules, deep supervision, augmentation choice."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from segattn.data.transforms import train_pipeline
from segattn.models import UNetAttention
from segattn.training.module import SegmentationModule, parameter_groups, warmup_cosine

NET = dict(depth=2, base_channels=8, heads=2)


def test_weight_decay_only_on_conv_and_linear_weights():
    net = UNetAttention(**NET)
    decay, no_decay = parameter_groups(net, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in net.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decayed | spared == set(names.values()) and not decayed & spared
    assert all(n.endswith("weight") for n in decayed)
    assert "inc.1.weight" in spared and "inc.1.bias" in spared  # BatchNorm scale and shift
    assert "self_attention.norm.weight" in spared and "self_attention.qkv.bias" in spared
    assert (
        "inc.0.weight" in decayed
        and "self_attention.qkv.weight" in decayed
        and "cross_attention.0.query.weight" in decayed
    )
    everything = parameter_groups(net, 1e-4, decay_all=True)
    assert len(everything[0]["params"]) == len(names) and everything[1]["params"] == []


def test_warmup_cosine_rises_then_decays_to_zero():
    factor = warmup_cosine(100, 0.3)
    values = [factor(s) for s in range(100)]
    assert values[0] < 0.05 and max(values) == pytest.approx(1.0, abs=0.05)
    assert values.index(max(values)) in range(28, 32)
    assert values[-1] < 0.01 and all(a >= b for a, b in zip(values[30:], values[31:]))


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_gradients_are_clipped_under_mixed_precision(precision):
    """Lightning's mixed-precision plugin refuses to clip for the fused AdamW (it raised on the first
    CUDA run of ``trainer=gpu``, bf16-mixed); the optimizer the module picks must train there."""
    import lightning as L

    from segattn.data import SyntheticDataModule

    data = SyntheticDataModule(image_size=32, batch_size=4, num_train=8)
    module = SegmentationModule(net=NET, class_names=data.class_names, lr=1e-3)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        precision=precision,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2
    assert trainer.optimizers[0].defaults["fused" if precision == "32-true" else "foreach"]


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_schedules_warm_up_to_the_peak_learning_rate(scheduler, tmp_path):
    import lightning as L

    from segattn.data import SyntheticDataModule

    data = SyntheticDataModule(image_size=32, batch_size=4, num_train=8)
    module = SegmentationModule(
        net=NET, class_names=data.class_names, lr=1e-2, scheduler=scheduler, warmup_fraction=0.5
    )
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[Record()],
        limit_val_batches=0,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    assert len(lrs) == 8  # 2 steps per epoch
    peak = lrs.index(max(lrs))
    assert 2 <= peak <= 4 and max(lrs) == pytest.approx(1e-2, rel=0.3)
    assert lrs[0] < 0.5e-2 and lrs[-1] < max(lrs) / 2


def test_deep_supervision_adds_auxiliary_losses():
    torch.manual_seed(0)
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 2, (2, 32, 32))
    plain = SegmentationModule(net=NET, class_names=["a", "b"])
    deep = SegmentationModule(net={**NET, "deep_supervision": 1}, class_names=["a", "b"])
    deep.net.load_state_dict(plain.net.state_dict(), strict=False)
    main = plain.training_loss(images, masks)
    assert torch.isclose(plain.criterion(plain.net(images), masks), main)
    logits, aux = deep.net.forward_with_aux(images)
    expected = (deep.criterion(logits, masks) + 0.5 * deep.criterion(aux[0], masks[:, 1::2, 1::2])) / 1.5
    assert torch.isclose(deep.training_loss(images, masks), expected)
    deep.training_loss(images, masks).backward()
    assert deep.net.aux_heads[0].weight.grad.abs().sum() > 0


def test_augmentation_levels():
    stats = ((0.5,) * 3, (0.25,) * 3)
    kinds = lambda p: [type(t) for t in p.transforms]  # noqa: E731
    assert kinds(train_pipeline(32, stats, rgb=True, augment="none")) == [A.Resize, A.Normalize]
    assert kinds(train_pipeline(32, stats, rgb=True)) == [A.Resize, A.HorizontalFlip, A.Normalize]
    assert kinds(train_pipeline(32, stats, rgb=True, vertical_flip=True)) == [
        A.Resize,
        A.HorizontalFlip,
        A.VerticalFlip,
        A.Normalize,
    ]
    strong = kinds(train_pipeline(32, stats, rgb=True, augment="strong"))
    assert A.RandomResizedCrop in strong and A.ColorJitter in strong and A.Affine in strong
    assert train_pipeline(32, stats, rgb=True).transforms[0].interpolation == 3  # cv2.INTER_AREA: antialiased
    # The affine warp invents no labels: a mask of one class stays that class everywhere.
    warp = next(t for t in train_pipeline(32, stats, rgb=True, augment="strong").transforms if isinstance(t, A.Affine))
    warp.p = 1.0
    mask = np.full((32, 32), 2, dtype=np.uint8)
    for seed in range(5):
        warp.set_random_seed(seed)
        assert (warp(image=np.full((32, 32, 3), 100, np.uint8), mask=mask)["mask"] == 2).all()
    with pytest.raises(ValueError, match=r"data.augment: got 'heavy'; allowed: none, light, strong"):
        train_pipeline(32, stats, rgb=True, augment="heavy")


@pytest.mark.parametrize(
    "setting, mode, marks", [(False, None, 0), (True, "default", 0), ("reduce-overhead", "reduce-overhead", 2)]
)
def test_compile_setting_picks_the_mode_and_marks_cuda_graph_steps(monkeypatch, setting, mode, marks):
    compiled, marked, compile_for_real = [], [], torch.compile
    # The real wrapper (dynamo), with its eager backend: seconds instead of inductor's minute.
    monkeypatch.setattr(
        torch, "compile", lambda fn, mode=None: compiled.append(mode) or compile_for_real(fn, backend="eager")
    )
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marked.append(1))
    module = SegmentationModule(net=NET, class_names=["a", "b"], compile=setting)
    assert compiled == ([] if mode is None else [mode])
    assert module(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    module.training_loss(torch.randn(1, 3, 32, 32), torch.zeros(1, 32, 32, dtype=torch.long))
    assert len(marked) == marks  # CUDA graphs replay into the same memory: every step is announced


def test_unknown_compile_mode_is_named():
    with pytest.raises(ValueError, match=r"module.compile: got 'fast'.*reduce-overhead"):
        SegmentationModule(net=NET, class_names=["a", "b"], compile="fast")


@pytest.mark.parametrize("warmup, total", [(0.1, 10), (0.05, 20), (0.25, 4), (0.0, 1000), (0.5, 2), (0.3, 100)])
def test_one_cycle_builds_and_runs_whatever_the_warmup_and_length(warmup, total):
    """pct_start × total_steps = 1 makes PyTorch's OneCycleLR divide by zero when it is built."""
    from segattn.training.module import one_cycle_pct_start

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    pct = one_cycle_pct_start(warmup, total)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=total, pct_start=pct)
    rates = []
    for _ in range(total - 1):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert max(rates) <= 1e-3 + 1e-12 and rates[-1] < 1e-4  # warms up at most to lr, ends annealed
    if warmup * total != 1 and warmup >= 1e-3:
        assert pct == warmup  # other settings are left as given


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

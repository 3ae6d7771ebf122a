"""segattn.training.module: optimizer groups, schedules, losses, compilation and loading from a checkpoint."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from segattn.checkpoint import load_checkpoint
from segattn.data import SyntheticDataModule
from segattn.errors import CheckpointError
from segattn.models import UNetAttention
from segattn.training.module import SegmentationModule, module_from_checkpoint, parameter_groups, warmup_cosine
from tests.helpers.checkpoints import tiny_checkpoint as _tiny_checkpoint
from tests.helpers.configs import compose_train, problems_of

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


def test_a_torchvision_encoder_learns_at_its_own_rate_in_groups_of_its_own():
    net = UNetAttention(encoder="resnet18", heads=8)
    groups = {g["name"]: g for g in parameter_groups(net, 1e-4, lr=2e-3, encoder_lr_scale=0.1)}
    assert set(groups) == {"weights", "norms_and_biases", "encoder_weights", "encoder_norms_and_biases"}
    in_encoder = {id(p) for p in net.encoder.parameters()}
    assert {id(p) for g in ("encoder_weights", "encoder_norms_and_biases") for p in groups[g]["params"]} == in_encoder
    assert groups["encoder_weights"]["lr"] == pytest.approx(2e-4) and groups["weights"]["lr"] == 2e-3
    assert groups["encoder_weights"]["weight_decay"] == 1e-4 and groups["encoder_norms_and_biases"]["weight_decay"] == 0
    assert [g["name"] for g in parameter_groups(UNetAttention(**NET), 1e-4)] == ["weights", "norms_and_biases"]


def test_a_frozen_encoder_keeps_its_weights_and_batchnorm_statistics_while_the_decoder_learns():
    import lightning as L

    L.seed_everything(0)
    data = SyntheticDataModule(image_size=64, batch_size=4, num_train=8)
    module = SegmentationModule(
        net=dict(encoder="resnet18", heads=8),
        class_names=data.class_names,
        freeze_encoder_epochs=1,
        channels_last=False,
    )
    encoder_before = {k: v.clone() for k, v in module.net.encoder.state_dict().items()}
    head_before = module.net.head.weight.detach().clone()
    modes, unchanged = {}, {}

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            modes.setdefault(trainer.current_epoch, pl_module.net.encoder.training)

        def on_train_epoch_end(self, trainer, pl_module):
            state = pl_module.net.encoder.state_dict()
            unchanged[trainer.current_epoch] = all(torch.equal(v, state[k]) for k, v in encoder_before.items())

    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[Watch()],
    )
    trainer.fit(module, datamodule=data)
    # epoch 0: frozen, in eval mode (BatchNorm statistics kept); epoch 1: learning, in train mode
    assert modes == {0: False, 1: True} and unchanged == {0: True, 1: False}
    assert not torch.equal(head_before, module.net.head.weight)
    assert problems_of("module.freeze_encoder_epochs=-1").count("module.freeze_encoder_epochs: got -1") == 1
    assert "module.encoder_lr_scale: got 0" in problems_of("module.encoder_lr_scale=0")


def test_unknown_compile_mode_is_named():
    with pytest.raises(ValueError, match=r"compile: got 'fast'; expected true, false or one of .*reduce-overhead"):
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


def _steps(max_epochs, max_steps, num_train=16, world_size=1):
    module = SegmentationModule(net=dict(depth=2, base_channels=8, heads=2), class_names=["a", "b"])
    data = SyntheticDataModule(image_size=32, batch_size=4, num_train=num_train)
    module._trainer = SimpleNamespace(
        datamodule=data,
        max_steps=max_steps,
        max_epochs=max_epochs,
        world_size=world_size,
        limit_train_batches=1.0,
        accumulate_grad_batches=1,
    )
    return module.total_training_steps()


def test_11_the_schedule_spans_whichever_limit_ends_the_run_first():
    assert _steps(max_epochs=2, max_steps=100) == 8  # 4 steps per epoch: the epochs end it
    assert _steps(max_epochs=20, max_steps=10) == 10
    assert _steps(max_epochs=-1, max_steps=10) == 10 and _steps(max_epochs=None, max_steps=10) == 10
    assert _steps(max_epochs=3, max_steps=-1, num_train=17, world_size=2) == 3 * 3  # 9 per process: 3 batches
    assert (
        "trainer.max_epochs: got -1 (no limit) and trainer.max_steps is not set, but module.scheduler=onecycle"
        in problems_of("trainer.max_epochs=-1")
    )
    assert "trainer.max_epochs: got null; expected an integer >= 1" in problems_of("trainer.max_epochs=null")
    for ok in (["trainer.max_epochs=-1", "+trainer.max_steps=10"], ["trainer.max_epochs=-1", "module.scheduler=none"]):
        from segattn.config import validate_train_config

        validate_train_config(compose_train(*ok))


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

"""The LightningModule: loss, optimiser and schedule, and the Dice/IoU metrics of each split."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from segattn.checkpoint import weight_mismatches
from segattn.errors import CheckpointError, NonFiniteLossError
from segattn.inference import InferenceSettings, predict_logits
from segattn.metrics.scores import SegmentationScores, flatten_scores
from segattn.models import UNetAttention
from segattn.training.losses import LOSS_NAMES, SegmentationLoss
from segattn.training.nonfinite import NonFiniteLossWatch, describe_step, nonfinite_message
from segattn.values import is_int, is_number

log = logging.getLogger(__name__)
SCHEDULERS = ("cosine", "onecycle", "none")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that also capture CUDA graphs
NONFINITE_POLICIES = ("error", "skip")
TOTAL_STEPS_KEY = "segattn_schedule_total_steps"


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
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "onecycle",
        warmup_fraction: float = 0.3,
        decay_norm_and_bias: bool = False,
        include_background: bool = False,
        compile: bool | str = False,
        channels_last: bool = True,
        nonfinite_loss: str = "error",
        encoder_lr_scale: float = 1.0,
        freeze_encoder_epochs: int = 0,
        inference: dict | None = None,
        config: dict | None = None,
    ) -> None:
        super().__init__()
        problems = module_problems({k: v for k, v in locals().items() if k in MODULE_SETTINGS})
        if problems:
            raise ValueError("SegmentationModule: " + "; ".join(problems))
        compile_mode = compile_mode_of(compile)
        self.save_hyperparameters()
        self.inference = InferenceSettings(**(inference or {}))
        self.net = UNetAttention(**net)
        num_classes = self.net.num_classes
        self.criterion = SegmentationLoss(loss, num_classes, class_weights, ignore_index, include_background)
        scores = dict(
            num_classes=num_classes,
            class_names=class_names,
            ignore_index=ignore_index,
            include_background=include_background,
        )
        self.val_scores = SegmentationScores(**scores)
        self.test_scores = SegmentationScores(**scores)
        if channels_last:  # NHWC: the layout the fast convolution kernels of GPUs and many CPUs work in
            self.net = self.net.to(memory_format=torch.channels_last)
        # Kept out of the registered submodules so the state dict has the plain ``net.*`` keys.
        compiled = compile_mode is not None
        object.__setattr__(self, "_compiled_net", torch.compile(self.net, mode=compile_mode) if compiled else None)
        object.__setattr__(
            self,
            "_compiled_aux",
            torch.compile(self.net.forward_with_aux, mode=compile_mode) if compiled and self.net.aux_heads else None,
        )
        self._graph_steps = compile_mode in CUDA_GRAPH_MODES
        self.defer_finite_check: bool | None = None  # see defers_finite_check
        self._total_steps: int | None = None  # the schedule's length, saved in checkpoints
        self._resumed_total_steps: int | None = None  # that of the checkpoint being resumed
        self._nonfinite = NonFiniteLossWatch()

    def _run_net(self, compiled, eager, x: Tensor):
        """``compiled`` (or ``eager`` when not compiling) on ``x`` in the network's layout."""
        if self._graph_steps:  # CUDA graphs replay into the same memory each step: tell torch a step begins
            torch.compiler.cudagraph_mark_step_begin()
        fn = eager if compiled is None else compiled  # a compiled module has no truth value
        return fn(x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x)

    def forward(self, x: Tensor) -> Tensor:
        return self._run_net(self._compiled_net, self.net, x)

    def training_loss(self, images: Tensor, masks: Tensor) -> Tensor:
        """The criterion on the logits, plus, with deep supervision, on each auxiliary head's
        logits against the mask sampled at its resolution (weights 1/2, 1/4, ...; the weighted
        sum is divided by the total weight so the loss stays on the same scale)."""
        if not self.net.aux_heads:
            return self.criterion(self(images), masks)
        logits, aux = self._run_net(self._compiled_aux, self.net.forward_with_aux, images)
        total, weight = self.criterion(logits, masks), 1.0
        for level, aux_logits in enumerate(aux, start=1):
            stride, w = (
                masks.shape[-1] // aux_logits.shape[-1],
                0.5**level,
            )  # 2**level, or 2**(level+1) after a torchvision encoder
            total = total + w * self.criterion(aux_logits, masks[:, stride // 2 :: stride, stride // 2 :: stride])
            weight += w
        return total / weight

    def training_step(self, batch: dict, batch_idx: int) -> Tensor | None:
        loss = self.training_loss(batch["image"], batch["mask"])
        where = (self.current_epoch, self.global_step, batch_idx, list(batch.get("name", []))[:4])
        deferred = self.defers_finite_check(loss)
        if deferred:
            self._nonfinite.record(
                loss, *where
            )  # read on the host before checkpoints, validation, at epoch ends, every 100 steps
        elif not torch.isfinite(loss):
            if self.hparams.nonfinite_loss != "skip":
                raise NonFiniteLossError(nonfinite_message(loss.item(), describe_step(*where)))
            log.warning("Skipping a batch with non-finite loss %s at %s", loss.item(), describe_step(*where))
            if self._trainer is None or self.trainer.world_size == 1:
                return None  # Lightning skips the optimizer step for this batch
            # Under DDP every process must join the gradient all-reduce and the logging below
            # (Lightning refuses None there): this batch gets a zero loss with zero gradients.
            loss = sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)
        # Every logged step (no cross-process sync: cheap) and the epoch mean over every batch (synced).
        # Lightning reads progress-bar values on the host after every batch: where that would wait
        # for the device (deferred), the bar shows the epoch mean instead of each step's loss.
        batch_size = len(batch["image"])
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=not deferred, batch_size=batch_size)
        self.log(
            "train/loss", loss, on_step=False, on_epoch=True, prog_bar=deferred, batch_size=batch_size, sync_dist=True
        )
        return loss

    def defers_finite_check(self, loss: Tensor) -> bool:
        """Whether the loss is checked by ``NonFiniteLossWatch`` (no host read per step) instead of
        at once: ``defer_finite_check``, or when None, with ``nonfinite_loss=error`` on an
        accelerator. On the CPU reading the loss waits for nothing; ``skip`` must know before the
        optimizer step."""
        if self.hparams.nonfinite_loss == "skip":
            return False
        return loss.device.type != "cpu" if self.defer_finite_check is None else self.defer_finite_check

    # No checkpoint, validation or epoch end sees weights updated from a non-finite loss.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self._nonfinite.check()
        if self._total_steps is not None:
            checkpoint[TOTAL_STEPS_KEY] = self._total_steps  # a resumed run must lay out the same schedule

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resumed_total_steps = checkpoint.get(TOTAL_STEPS_KEY)

    def on_validation_start(self) -> None:
        self._nonfinite.check()

    def on_train_epoch_end(self) -> None:
        self._nonfinite.check()

    def encoder_frozen(self) -> bool:
        """Whether this epoch keeps a torchvision encoder as it is (``freeze_encoder_epochs``)."""
        return self.net.encoder is not None and self.current_epoch < self.hparams.freeze_encoder_epochs

    def on_train_epoch_start(self) -> None:
        # A frozen encoder's BatchNorm keeps its statistics (pretrained ones are worth more than
        # those of a few batches) and dropout rests: the whole encoder runs in eval mode, and in
        # train mode again from the first epoch it learns (Lightning does not switch it back).
        if self.net.encoder is not None:
            self.net.encoder.train(not self.encoder_frozen())

    def on_before_optimizer_step(self, optimizer) -> None:
        # Frozen by leaving its gradients out of the step (AdamW then neither moves nor decays those
        # weights); the parameters keep requires_grad, which DDP needs unchanged during the run.
        if self.encoder_frozen():
            for param in self.net.encoder.parameters():
                param.grad = None

    def on_train_end(self) -> None:
        self._nonfinite.check()

    def predict_logits(self, images: Tensor) -> Tensor:
        """Logits of whole images as ``inference`` says (``segattn.inference.predict_logits``)."""
        return predict_logits(self, images, self.net.num_classes, self.inference, 2**self.net.depth)

    def _evaluate_batch(self, batch: dict, split: str, scores: SegmentationScores) -> dict[str, Tensor]:
        """Loss and scores of one batch; returns the predicted class ids (callbacks receive them in
        ``on_validation_batch_end``: the figure callback ranks images by them without predicting again)."""
        logits = self.predict_logits(batch["image"])
        loss = self.criterion(logits, batch["mask"])
        self.log(
            f"{split}/loss",
            loss,
            on_epoch=True,
            prog_bar=split == "val",
            batch_size=len(batch["image"]),
            sync_dist=True,
        )
        predictions = logits.argmax(dim=1)
        scores.update(predictions, batch["mask"])
        return {"predictions": predictions}

    def _log_scores(self, split: str, scores: SegmentationScores) -> None:
        # torchmetrics gathers the counts from every process in compute(), so the values are global.
        flat = flatten_scores(scores.compute(), split)
        scores.reset()
        for key in (f"{split}/dice", f"{split}/iou"):
            # Undefined when no scored class was seen: logged as NaN all the same, so a checkpoint
            # callback monitoring it ranks the epoch last instead of failing on a missing key.
            flat.setdefault(key, math.nan)
        headline = {k: v for k, v in flat.items() if k in (f"{split}/dice", f"{split}/iou")}
        self.log_dict(headline, prog_bar=True)
        self.log_dict({k: v for k, v in flat.items() if k not in headline})

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate_batch(batch, "val", self.val_scores)

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val", self.val_scores)

    def test_step(self, batch: dict, batch_idx: int) -> dict[str, Tensor]:
        return self._evaluate_batch(batch, "test", self.test_scores)

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
        step_limit = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        if max_epochs is None:  # no epoch limit: the step limit alone (validation requires one)
            return step_limit or 1
        if datamodule is None or not hasattr(datamodule, "dataset"):
            return int(trainer.estimated_stepping_batches)  # Lightning's estimate honours both limits
        per_rank = math.ceil(len(datamodule.dataset("train")) / trainer.world_size)
        batches = math.ceil(per_rank / datamodule.batch_size)
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None and limit < 1.0:
            batches = int(batches * limit)
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        by_epochs = max(1, per_epoch * max_epochs)
        # Whichever limit ends the run first sets the schedule's length.
        return min(by_epochs, step_limit) if step_limit else by_epochs

    def configure_optimizers(self):
        hp = self.hparams
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        groups = parameter_groups(self.net, hp.weight_decay, hp.decay_norm_and_bias, hp.lr, hp.encoder_lr_scale)
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, **adamw_implementation(precision))
        if hp.scheduler == "none":  # a constant factor: the learning rate keeps its TensorBoard tags (train/lr/...)
            constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": constant, "interval": "step", "name": "train/lr"},
            }
        total_steps = max(2, int(self.total_training_steps()))
        resumed, self._resumed_total_steps = self._resumed_total_steps, None
        if resumed is not None and resumed != total_steps:
            raise CheckpointError(
                f"cannot resume: the checkpoint's learning-rate schedule spans {resumed} optimizer steps, but this "
                f"run's settings give {total_steps} (the training images per epoch, batch size, epochs or step limit "
                "differ: e.g. data.patches_per_image, a split fraction or the data itself). Resume with the "
                "checkpoint's settings, or start a new run from its weights with init_from= (instead of ckpt_path=)"
            )
        self._total_steps = total_steps
        if hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, hp.warmup_fraction))
        else:
            # Starts at lr/25, warms up to lr over warmup_fraction of the run, anneals to ~0.
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[group["lr"] for group in groups],
                total_steps=total_steps,
                pct_start=one_cycle_pct_start(hp.warmup_fraction, total_steps),
            )
        # "train/lr": TensorBoard shows the learning rate beside the training loss
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
        }


def module_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "checkpoint") -> SegmentationModule:
    """Rebuild the LightningModule from the stored settings and load its weights strictly.

    Any missing, unexpected or mis-shaped tensor is an error naming it: never a half-loaded model.
    """
    hparams = checkpoint["hyper_parameters"]
    accepted = set(inspect.signature(SegmentationModule.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in hparams.items() if k in accepted}
    kwargs["compile"] = False
    # The checkpoint holds every weight: a pretrained encoder's ImageNet weights are not read again
    kwargs["net"] = {**kwargs["net"], "encoder_weights": None}
    try:
        module = SegmentationModule(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its stored model settings do not build a model: {err}") from None
    problems = weight_mismatches(module.state_dict(), checkpoint["state_dict"])
    if problems:
        raise CheckpointError(f"{path}: weights do not fit the model its settings describe: " + "; ".join(problems))
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    return module


def compile_mode_of(compile: bool | str) -> str | None:
    """``module.compile`` as a ``torch.compile`` mode: None (off) for false, ``"default"`` for
    true, or one of ``COMPILE_MODES`` by name (``reduce-overhead``: on a GPU the network's forward
    and backward are also replayed as CUDA graphs, one launch each instead of one per kernel)."""
    if compile is False or compile is None:
        return None
    return "default" if compile is True else compile


def module_problems(settings: dict[str, Any]) -> list[str]:
    """Every problem of the ``SegmentationModule`` training settings present in ``settings`` (the
    ``module`` config block), as "<setting>: got <value>; <what is allowed>": the constructor
    raises them, and the config check reports them before any data is read."""

    problems = []
    loss = settings.get("loss")
    if "loss" in settings and loss not in LOSS_NAMES:
        problems.append(f"loss: got {loss!r}; allowed: {', '.join(LOSS_NAMES)}")
    elif loss == "dice" and settings.get("class_weights") is not None:
        problems.append(
            "class_weights: they weight the cross-entropy term, and loss=dice has none; "
            "use loss=ce+dice (or ce), or class_weights=null"
        )
    lr = settings.get("lr")
    if is_number(lr) and lr <= 0:
        problems.append(f"lr: got {lr}; expected a learning rate > 0")
    weight_decay = settings.get("weight_decay")
    if is_number(weight_decay) and weight_decay < 0:
        problems.append(f"weight_decay: got {weight_decay}; expected a value >= 0")
    scheduler = settings.get("scheduler")
    if "scheduler" in settings and scheduler not in SCHEDULERS:
        problems.append(f"scheduler: got {scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    warmup = settings.get("warmup_fraction")
    if is_number(warmup) and not 0 <= warmup < 1:
        problems.append(f"warmup_fraction: got {warmup}; expected a fraction in [0, 1)")
    policy = settings.get("nonfinite_loss")
    if "nonfinite_loss" in settings and policy not in NONFINITE_POLICIES:
        problems.append(f"nonfinite_loss: got {policy!r}; allowed: {', '.join(NONFINITE_POLICIES)}")
    scale = settings.get("encoder_lr_scale")
    if is_number(scale) and scale <= 0:
        problems.append(f"encoder_lr_scale: got {scale}; expected a factor > 0 (1: the encoder learns at lr)")
    frozen = settings.get("freeze_encoder_epochs")
    if is_int(frozen) and frozen < 0:
        problems.append(f"freeze_encoder_epochs: got {frozen}; expected an integer >= 0")
    compile = settings.get("compile")
    if "compile" in settings and not (compile in (True, False, None) or compile in COMPILE_MODES):
        problems.append(f"compile: got {compile!r}; expected true, false or one of {', '.join(COMPILE_MODES)}")
    return problems


def adamw_implementation(precision: str) -> dict:
    """AdamW's fused kernel (one pass over every parameter), or its multi-tensor ``foreach`` path
    under mixed precision (``16-mixed``, ``bf16-mixed``): Lightning's mixed-precision plugin
    refuses to clip the gradients of an optimizer that could unscale them itself, as the fused one
    can, even in bf16 where nothing is scaled. PyTorch's default on the CPU loops over the
    parameter tensors in Python, which costs more than the update itself for a small network.
    Same update rule up to float rounding.
    """
    mixed = str(precision).endswith("-mixed") or str(precision) in ("16", "bf16")
    return {"foreach": True} if mixed else {"fused": True}


def parameter_groups(
    net: torch.nn.Module, weight_decay: float, decay_all: bool = False, lr: float = 3e-3, encoder_lr_scale: float = 1.0
) -> list[dict]:
    """AdamW groups: weight decay on conv and linear weights only (on everything with ``decay_all``,
    what a plain ``AdamW(net.parameters())`` does; kept for reproducing such recipes), and a
    torchvision encoder's parameters (``net.encoder``) in groups of their own at ``lr`` ×
    ``encoder_lr_scale``, so pretrained weights can move more slowly than the decoder.

    Decaying the scales and shifts of BatchNorm/LayerNorm and the biases only pulls them towards
    zero (a norm scale of 0 switches its channel off) without any regularising effect on the
    function's complexity, so they get none, as in most modern training recipes.
    """
    encoder = getattr(net, "encoder", None)
    in_encoder = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: dict[str, list] = {
        "weights": [],
        "norms_and_biases": [],
        "encoder_weights": [],
        "encoder_norms_and_biases": [],
    }
    for module in net.modules():
        for name, param in module.named_parameters(recurse=False):
            is_weight = decay_all or (name == "weight" and not isinstance(module, NORM_LAYERS))
            kind = "weights" if is_weight else "norms_and_biases"
            groups[("encoder_" + kind) if id(param) in in_encoder else kind].append(param)
    # The names become the TensorBoard tags train/lr/<name>.
    return [
        {
            "params": params,
            "weight_decay": weight_decay if name in ("weights", "encoder_weights") else 0.0,
            "lr": lr * (encoder_lr_scale if name.startswith("encoder_") else 1.0),
            "name": name,
        }
        for name, params in groups.items()
        if params or not name.startswith("encoder_")
    ]


NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)


def one_cycle_pct_start(warmup_fraction: float, total_steps: int) -> float:
    """``OneCycleLR``'s ``pct_start``: the warm-up fraction (at least 1e-3), moved off the values
    where the warm-up would end at step 0 (``pct_start × total_steps = 1``, e.g. 0.1 of 10 steps),
    where PyTorch divides by zero when it builds the schedule. 1.5 steps warm up as one does."""
    pct = max(warmup_fraction, 1e-3)
    return 1.5 / total_steps if math.isclose(pct * total_steps, 1.0) else pct


def warmup_cosine(total_steps: int, warmup_fraction: float):
    """LambdaLR factor: linear warm-up from 0 over ``warmup_fraction`` of the steps, then cosine to 0."""
    warmup = int(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


#: The constructor's settings (``module_problems`` checks them).
MODULE_SETTINGS = tuple(inspect.signature(SegmentationModule.__init__).parameters)[1:]

"""TensorBoard figures of predictions, MHSA heads and MHCA gates on the logging epochs.

Kept cheap: only every ``every_n_epochs`` validation epochs (and then not sooner than
``min_interval_s`` seconds after the last drawing: on a GPU an epoch of a small dataset takes
well under a second, and drawing takes seconds) and always on the last one; only on rank 0, a
few images, matplotlib figures (Agg) closed once logged. Only these images go through the
model's explicit attention path; training and validation stay on the fused path.
"""

from __future__ import annotations

import time
from dataclasses import fields, is_dataclass, replace

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from segattn.figures import (
    choose_queries,
    denormalize,
    gate_figure,
    image_dice,
    normalization_of,
    prediction_figure,
    self_attention_figure,
    varied_sample,
    worst_k,
)
from segattn.metrics.attention import AttentionStats
from segattn.values import is_int, is_number

#: Figure tags: one group (``val_images``), numbered so that TensorBoard lists the predictions first.
TAGS = {
    "predictions": "val_images/1_predictions",
    "worst": "val_images/2_worst",
    "mhsa": "val_images/3_mhsa",
    "gates": "val_images/4_gates",
}
#: Single-number MHSA statistics, logged as val_attention/<key>.
SINK_SCALARS = ("mhsa_border_ratio", "mhsa_background_border_ratio", "mhsa_foreground_key_ratio", "mhsa_register_mass")


def metrics_step(trainer: Trainer) -> int:
    """The step Lightning gives the validation scalars (one less than ``global_step`` at the end of
    an epoch), so figures and the curves they explain share an x value."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    return int(getattr(loop, "_batches_that_stepped", trainer.global_step))


def is_last_epoch(epoch: int, max_epochs: int | None) -> bool:
    """Epoch ``epoch`` (from 0) is the run's last, by ``max_epochs`` (None or -1: no last epoch)."""
    return max_epochs is not None and max_epochs > 0 and epoch + 1 >= max_epochs


def is_logging_epoch(epoch: int, every_n_epochs: int, max_epochs: int | None) -> bool:
    """Every ``every_n_epochs``-th epoch (counting from 1) and always the last one."""
    return (epoch + 1) % every_n_epochs == 0 or is_last_epoch(epoch, max_epochs)


def original_size(dataset, index: int) -> tuple[int, int] | None:
    """(height, width) of the image file behind item ``index``, to undo the square resize on display."""
    path = getattr(dataset.samples[index], "image_path", None)
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except OSError:
        return None


class AttentionImageLogger(Callback):
    """On the logging epochs, for ``num_images`` validation images (a fixed, seeded sample spread
    over name groups, e.g. breeds) and the ``worst_k`` validation images by Dice, logs:

    - ``val_images/1_predictions/<name>``, ``val_images/2_worst/<rank>`` (the ``worst_k`` lowest
      Dice over every validation image): image, ground truth, prediction, errors, with the Dice;
    - ``val_images/3_mhsa/<name>`` (fixed sample): one row per query cell taken from the ground
      truth, one column per MHSA head (``per_head=false``: the head mean), fixed log scale;
    - ``val_images/4_gates/<name>`` (fixed sample): every MHCA level's gate on a 0–1 scale, its
      deviation from its mean, and its histograms on foreground and background;
    - scalars over the fixed sample: ``val_attention/mhsa_entropy_head<k>`` (entropy / log N) and
      ``val_attention/gate_contrast_level<i>`` (mean gate on foreground − on background).
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_images: int = 3,
        worst_k: int = 2,
        num_queries: int = 3,
        per_head: bool = True,
        seed: int | None = None,
        min_interval_s: float = 30.0,
    ) -> None:
        for key, value, low in (
            ("every_n_epochs", every_n_epochs, 1),
            ("num_images", num_images, 1),
            ("worst_k", worst_k, 0),
            ("num_queries", num_queries, 1),
        ):
            if not is_int(value) or value < low:
                raise ValueError(f"callbacks.attention_images.{key}: got {value!r}; expected an integer >= {low}")
        if not is_number(min_interval_s) or min_interval_s < 0:
            raise ValueError(
                f"callbacks.attention_images.min_interval_s: got {min_interval_s!r}; expected seconds >= 0"
            )
        self.every_n_epochs = every_n_epochs
        self.min_interval_s = float(min_interval_s)
        self.num_images = num_images
        self.worst_k = worst_k
        self.num_queries = num_queries
        self.per_head = per_head
        self.seed = seed
        self._val_dice: dict[str, float] | None = None  # per-image Dice of this validation epoch, by name
        self._last_drawn: float | None = None  # time.monotonic() of the last drawing
        self._draw_epoch: int | None = None  # the epoch whose validation draws (decided when it starts)

    def _draws_now(self, trainer: Trainer) -> bool:
        """A logging epoch (every N-th, and the last), unless the last drawing is under
        ``min_interval_s`` seconds old; the last epoch always draws."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return False
        if not is_logging_epoch(trainer.current_epoch, self.every_n_epochs, trainer.max_epochs):
            return False
        recent = self._last_drawn is not None and time.monotonic() - self._last_drawn < self.min_interval_s
        return is_last_epoch(trainer.current_epoch, trainer.max_epochs) or not recent

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        draws = self._draws_now(trainer)
        self._draw_epoch = trainer.current_epoch if draws else None
        self._val_dice = {} if draws and self.worst_k else None

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """On a drawing epoch, the Dice of each validated image from the step's own predictions."""
        if self._val_dice is None or not isinstance(outputs, dict) or "predictions" not in outputs:
            return
        ignore = getattr(trainer.datamodule, "ignore_index", None)
        predictions, masks = outputs["predictions"].cpu(), batch["mask"].cpu()  # one copy per batch, not per image
        for name, prediction, mask in zip(batch["name"], predictions, masks):
            self._val_dice[name] = image_dice(prediction, mask, pl_module.net.num_classes, ignore)

    def scores_from_validation(self, dataset) -> list[float] | None:
        """Per-image Dice of ``dataset`` (in its order) from the validation just run, or None when
        it did not see every image (other processes' shards, ``limit_val_batches``) or names repeat."""
        names = list(dataset.names)
        if self._val_dice is None or len(set(names)) != len(names) or any(n not in self._val_dice for n in names):
            return None
        return [self._val_dice[n] for n in names]

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._draw_epoch != trainer.current_epoch:
            return
        self._draw_epoch = None
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None or trainer.datamodule is None:
            return
        dataset = trainer.datamodule.dataset("val")
        if len(dataset) == 0:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                self.log_figures(logger.experiment, trainer, pl_module, dataset)
        finally:
            pl_module.train(was_training)
            self._last_drawn = time.monotonic()

    def log_figures(self, writer, trainer: Trainer, pl_module: LightningModule, dataset) -> None:
        dm = trainer.datamodule
        seed = self.seed if self.seed is not None else getattr(dm, "seed", 0)
        fixed = varied_sample(dataset.names, self.num_images, seed)
        worst = []
        if self.worst_k:
            scores = self.scores_from_validation(dataset) or self.dice_per_image(pl_module, dataset, dm)
            worst = worst_k(scores, self.worst_k)  # over every validation image, the fixed sample included
        items = [dataset[i] for i in fixed + worst]
        if getattr(dm, "patch_size", None):  # native-size images: show the central window the model sees
            items = [central_window(it, dm.patch_size, 2**pl_module.net.depth, dm.ignore_index) for it in items]
        images = torch.stack([it["image"] for it in items]).to(pl_module.device)
        logits, maps = pl_module.net(images, return_attention=True)
        predictions = logits.argmax(1).cpu()
        stats = normalization_of(getattr(dataset, "transform", None))
        num_classes, ignore = pl_module.net.num_classes, dm.ignore_index
        step = metrics_step(trainer)
        attention = AttentionStats(ignore)
        for k, (index, item) in enumerate(zip(fixed + worst, items)):
            photo = denormalize(item["image"], stats)
            size = None if getattr(dm, "patch_size", None) else original_size(dataset, index)
            dice = image_dice(predictions[k], item["mask"], num_classes, ignore)
            is_worst = k >= len(fixed)
            note = f"worst {k - len(fixed) + 1} of the {len(dataset)} validation images by Dice" if is_worst else ""
            tag = f"{TAGS['worst']}/{k - len(fixed) + 1}" if is_worst else f"{TAGS['predictions']}/{item['name']}"
            figure = prediction_figure(
                photo,
                item["mask"],
                predictions[k],
                name=item["name"],
                dice=dice,
                class_names=dm.class_names,
                ignore_index=ignore,
                original_size=size,
                note=note,
            )
            writer.add_figure(tag, figure, global_step=step, close=True)
            if is_worst:
                continue
            if maps.self_attention is not None:
                queries = choose_queries(item["mask"], maps.self_attention_size, self.num_queries, ignore)
                figure = self_attention_figure(
                    photo,
                    maps.self_attention[k],
                    maps.self_attention_size,
                    queries,
                    name=item["name"],
                    target=item["mask"],
                    per_head=self.per_head,
                    original_size=size,
                )
                writer.add_figure(f"{TAGS['mhsa']}/{item['name']}", figure, global_step=step, close=True)
            if maps.gates:
                figure = gate_figure(
                    photo,
                    [g[k] for g in maps.gates],
                    item["mask"],
                    name=item["name"],
                    ignore_index=ignore,
                    original_size=size,
                    levels=maps.gate_levels,
                )
                writer.add_figure(f"{TAGS['gates']}/{item['name']}", figure, global_step=step, close=True)
        n = len(fixed)
        if maps.self_attention is not None or maps.gates:
            attention.update(slice_maps(maps, n), torch.stack([it["mask"] for it in items[:n]]).to(logits.device))
            for key, values in attention.compute().items():
                if key in SINK_SCALARS:
                    if values is not None:
                        writer.add_scalar(f"val_attention/{key}", values, global_step=step)
                    continue
                name = {"mhsa_head_entropy": "mhsa_entropy_head", "gate_contrast": "gate_contrast_level"}.get(key)
                for i, value in enumerate(values if name else []):
                    if value is not None:
                        writer.add_scalar(f"val_attention/{name}{i}", value, global_step=step)

    @staticmethod
    def dice_per_image(pl_module: LightningModule, dataset, dm) -> list[float]:
        """Per-image Dice of the whole validation split (fast path, batched), to find the worst
        when the validation loop's own predictions do not cover it."""
        scores: list[float] = []
        if getattr(dm, "patch_size", None):  # native sizes: one image at a time, as validation runs them
            for i in range(len(dataset)):
                item = dataset[i]
                prediction = pl_module.predict_logits(item["image"][None].to(pl_module.device)).argmax(1)[0].cpu()
                scores.append(image_dice(prediction, item["mask"], pl_module.net.num_classes, dm.ignore_index))
            return scores
        batch = max(1, getattr(dm, "batch_size", 8))
        for start in range(0, len(dataset), batch):
            items = [dataset[i] for i in range(start, min(len(dataset), start + batch))]
            predictions = pl_module(torch.stack([it["image"] for it in items]).to(pl_module.device)).argmax(1).cpu()
            scores += [
                image_dice(p, it["mask"], pl_module.net.num_classes, dm.ignore_index)
                for p, it in zip(predictions, items)
            ]
        return scores


def central_window(item: dict, size: int, multiple: int, pad_label: int) -> dict:
    """The central window of a native-size item, always ``size`` rounded up to a multiple of
    2**depth on each side (cropped, or padded with the ignore label), so patch-trained models get
    figures of what they see and items of different sizes stack into one batch."""
    side = -(-size // multiple) * multiple
    image, mask = item["image"], item["mask"]
    h, w = mask.shape
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    image, mask = image[:, top : top + side, left : left + side], mask[top : top + side, left : left + side]
    ph, pw = side - mask.shape[0], side - mask.shape[1]
    if ph or pw:
        image = torch.nn.functional.pad(image, (0, pw, 0, ph))
        mask = torch.nn.functional.pad(mask, (0, pw, 0, ph), value=pad_label)
    return {**item, "image": image, "mask": mask}


def slice_maps(maps, n: int):
    """The first ``n`` images of an ``AttentionMaps`` (the fixed sample, without the worst-k)."""

    def cut(value):
        if isinstance(value, torch.Tensor):
            return value[:n]
        if isinstance(value, list):
            return [cut(v) for v in value]
        return value

    if is_dataclass(maps):
        return replace(maps, **{f.name: cut(getattr(maps, f.name)) for f in fields(maps)})
    raise TypeError(f"expected AttentionMaps, got {type(maps).__name__}")

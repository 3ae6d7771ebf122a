"""Dice and IoU, dataset-level and per-image, from one torchmetrics confusion count.

Definitions (stated once here, used for training curves, ``evaluate.py`` and the benchmarks):

- Counts: ``torchmetrics.classification.MulticlassStatScores`` with
  ``multidim_average="samplewise"``, ``average=None`` and ``ignore_index`` gives per image and per
  class the true positives, false positives and false negatives over pixels (ignored pixels left
  out). Everything below derives from those counts, so both levels come from one pass.
- **Dataset-level** (``dice``, ``iou``; the headline ``val/dice`` and ``val/iou``): counts summed
  over all images first, then Dice_c = 2TP/(2TP+FP+FN), IoU_c = TP/(TP+FP+FN) per class; this is
  what ``MulticlassJaccardIndex`` / ``MulticlassF1Score`` with global averaging compute.
- **Per-image mean** (``dice_per_image``, ``iou_per_image``): the score of each (image, class)
  pair, then the mean over pairs whose union (TP+FP+FN) is non-empty, like
  ``torchmetrics.segmentation.MeanIoU``.
- Classes in the means: every class but the background (class 0) unless ``include_background``,
  and never the ignored class. A class absent from both targets and predictions has no score
  (NaN, ``null`` in JSON) and is left out of the means rather than counted as 0 or 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassStatScores


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator with NaN where the denominator is 0 (empty union)."""
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1), torch.full_like(numerator, math.nan))


class SegmentationScores(nn.Module):
    """Accumulates label maps and reports Dice and IoU as defined in this module's docstring."""

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        include_background: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for {num_classes} classes")
        self.ignore_index = ignore_index
        included = [c for c in range(num_classes) if c != ignore_index and (include_background or c != 0)]
        if not included:  # a one-class problem still reports its class
            included = [c for c in range(num_classes) if c != ignore_index]
        self.included = included
        self.stats = MulticlassStatScores(
            num_classes=num_classes,
            top_k=1,
            average=None,
            multidim_average="samplewise",
            ignore_index=ignore_index,
            validate_args=True,
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """preds and target: (B, H, W) class-id maps."""
        self.stats.update(preds, target)

    def reset(self) -> None:
        self.stats.reset()

    def compute(self) -> dict:
        """Scores as plain floats: ``{"dice": {"mean", "per_class", "per_image_mean"}, "iou": {...},
        "num_images"}``; per-class values are NaN for classes with an empty union."""
        counts = self.stats.compute().reshape(-1, self.num_classes, 5).double()  # (N, C, [tp, fp, tn, fn, sup])
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 3]
        union = tp + fp + fn
        idx = torch.tensor(self.included)
        report = {"num_images": int(counts.shape[0])}
        for name, numerator, denominator in (("dice", 2 * tp, 2 * tp + fp + fn), ("iou", tp, union)):
            per_class = _ratio(numerator.sum(0), denominator.sum(0))
            if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
                per_class[self.ignore_index] = math.nan  # the ignored class is never scored
            per_image = _ratio(numerator, denominator)[:, idx]
            report[name] = {
                "mean": float(per_class[idx].nanmean()),
                "per_class": {self.class_names[c]: float(per_class[c]) for c in range(self.num_classes)},
                "per_image_mean": float(per_image.nanmean()),
            }
        return report


def flatten_scores(report: dict, prefix: str) -> dict[str, float]:
    """``{"<prefix>/dice": .., "<prefix>/iou": .., "<prefix>/dice_per_image": .., "<prefix>/dice/<class>": ..}``,
    leaving out NaN entries (classes with nothing to score) so loggers get real numbers only."""
    flat: dict[str, float] = {}
    for metric in ("dice", "iou"):
        flat[f"{prefix}/{metric}"] = report[metric]["mean"]
        flat[f"{prefix}/{metric}_per_image"] = report[metric]["per_image_mean"]
        for cls, value in report[metric]["per_class"].items():
            flat[f"{prefix}/{metric}/{cls}"] = value
    return {k: v for k, v in flat.items() if not math.isnan(v)}

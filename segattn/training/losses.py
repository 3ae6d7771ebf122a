"""Segmentation losses: cross-entropy, soft Dice, and their sum, all honouring ignore_index."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSS_NAMES = ("ce", "dice", "ce+dice")


class SoftDiceLoss(nn.Module):
    """1 − soft Dice of the softmax probabilities, per class over the whole batch, averaged over
    the classes present in the batch's targets.

    A class absent from the targets would score ≈0 whatever the prediction and add a constant
    1/C to the loss with a gradient that only pushes its probability down, so it is left out;
    so is the background (class 0) unless ``include_background``, and the ``ignore_index`` class
    (its pixels are also left out of every other class's sums). A batch with no scored class
    present gives 0 (the cross-entropy term still trains on it).
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = None, include_background: bool = False, eps: float = 1.0
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.eps = eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        probs = logits.float().softmax(dim=1)
        valid = torch.ones_like(target, dtype=torch.bool) if self.ignore_index is None else target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        one_hot = F.one_hot(safe_target, self.num_classes).permute(0, 3, 1, 2).to(probs.dtype)
        weight = valid.unsqueeze(1).to(probs.dtype)
        probs, one_hot = probs * weight, one_hot * weight
        dims = (0, 2, 3)
        intersection = (probs * one_hot).sum(dims)
        target_sum = one_hot.sum(dims)
        cardinality = probs.sum(dims) + target_sum
        dice = (2 * intersection + self.eps) / (cardinality + self.eps)
        scored = target_sum > 0
        if not self.include_background:
            scored[0] = False
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            scored[self.ignore_index] = False
        # Masked mean without a host sync: 0 when no scored class is present.
        return ((1.0 - dice) * scored).sum() / scored.sum().clamp(min=1)


class SegmentationLoss(nn.Module):
    """``ce``, ``dice`` or ``ce+dice`` (the sum), with optional CE class weights and ignore_index.

    The Dice term scores the classes the metrics score (background only with ``include_background``).
    """

    def __init__(
        self,
        name: str = "ce+dice",
        num_classes: int = 2,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        include_background: bool = False,
    ) -> None:
        super().__init__()
        if name not in LOSS_NAMES:
            raise ValueError(f"module.loss: unknown loss name {name!r}; allowed: {', '.join(LOSS_NAMES)}")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(
                f"module.class_weights has {len(class_weights)} values but the data has {num_classes} classes"
            )
        self.name = name
        self.ignore_index = ignore_index
        weight = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weight, persistent=False)
        self.dice = SoftDiceLoss(num_classes, ignore_index, include_background)

    def cross_entropy(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over the pixels that are not ``ignore_index`` (weighted like
        ``F.cross_entropy``), and 0 with zero gradient when every pixel of the batch is ignored:
        ``F.cross_entropy`` would divide 0 by 0 and stop the run with a NaN loss."""
        ignore = -100 if self.ignore_index is None else self.ignore_index
        summed = F.cross_entropy(
            logits.float(), target, weight=self.class_weights, ignore_index=ignore, reduction="sum"
        )
        valid = target != ignore
        if self.class_weights is None:
            count = valid.sum()
        else:
            count = (self.class_weights[torch.where(valid, target, torch.zeros_like(target))] * valid).sum()
        return summed / count.clamp(min=1e-12).to(summed.dtype)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        if "ce" in self.name.split("+"):
            total = total + self.cross_entropy(logits, target)
        if "dice" in self.name.split("+"):
            total = total + self.dice(logits, target)
        return total

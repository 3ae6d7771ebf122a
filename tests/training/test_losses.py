"""segattn.training.losses: cross-entropy, soft Dice and their sum, with class weights and ignored pixels."""

from __future__ import annotations

import pytest
import torch

from segattn.training.losses import SegmentationLoss, SoftDiceLoss


def test_perfect_prediction_gives_low_loss_and_wrong_gives_high():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 20
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 20
    for name in ("ce", "dice", "ce+dice"):
        loss = SegmentationLoss(name, num_classes=3)
        assert loss(perfect, target) < 1e-3
        assert loss(wrong, target) > 0.9


def test_ce_plus_dice_is_the_sum():
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    total = SegmentationLoss("ce+dice", 3)(logits, target)
    assert torch.isclose(total, SegmentationLoss("ce", 3)(logits, target) + SegmentationLoss("dice", 3)(logits, target))


def test_ignored_pixels_do_not_change_the_loss():
    logits, target = torch.randn(1, 3, 8, 8), torch.randint(0, 2, (1, 8, 8))
    target[:, :4] = 2
    loss = SegmentationLoss("ce+dice", 3, ignore_index=2)
    base = loss(logits, target)
    changed = logits.clone()
    changed[:, :, :4] = torch.randn(1, 3, 4, 8) * 10
    assert torch.isclose(loss(changed, target), base)


def test_class_weights_and_errors():
    logits, target = torch.randn(2, 2, 4, 4), torch.randint(0, 2, (2, 4, 4))
    weighted = SegmentationLoss("ce", 2, class_weights=[1.0, 5.0])(logits, target)
    assert not torch.isclose(weighted, SegmentationLoss("ce", 2)(logits, target))
    with pytest.raises(ValueError, match=r"unknown loss name 'focal'; allowed: ce, dice, ce\+dice"):
        SegmentationLoss("focal", 2)
    with pytest.raises(ValueError, match="class_weights has 3 values but the data has 2 classes"):
        SegmentationLoss("ce", 2, class_weights=[1, 2, 3])


def test_soft_dice_gradient_flows():
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    SoftDiceLoss(2)(logits, torch.randint(0, 2, (2, 4, 4))).backward()
    assert logits.grad.abs().sum() > 0


def confident(target: torch.Tensor, num_classes: int, scale: float = 30.0) -> torch.Tensor:
    """Logits that predict ``target`` with near certainty."""
    return torch.nn.functional.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * scale


def test_soft_dice_perfect_prediction_is_zero_even_with_absent_classes():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:6] = 1  # classes 0 and 1 present, class 2 absent from the batch
    assert SoftDiceLoss(3)(confident(target, 3), target) < 1e-3
    assert SoftDiceLoss(3, include_background=True)(confident(target, 3), target) < 1e-3


def test_soft_dice_scores_only_the_foreground_classes_present():
    torch.manual_seed(0)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    logits = torch.randn(2, 3, 8, 8)
    probs = logits.softmax(1)
    inter = (probs[:, 1] * (target == 1)).sum()
    expected = 1 - (2 * inter + 1) / (probs[:, 1].sum() + (target == 1).sum() + 1)
    # Class 2 is absent: it adds nothing (an average over all classes would add ~1/3).
    assert SoftDiceLoss(3)(logits, target) == pytest.approx(float(expected), abs=1e-6)
    # With the background, the mean over classes 0 and 1.
    inter0 = (probs[:, 0] * (target == 0)).sum()
    dice0 = (2 * inter0 + 1) / (probs[:, 0].sum() + (target == 0).sum() + 1)
    both = SoftDiceLoss(3, include_background=True)(logits, target)
    assert both == pytest.approx(float((expected + 1 - dice0) / 2), abs=1e-6)


def test_soft_dice_never_scores_the_ignored_class_and_is_zero_without_foreground():
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, :3] = 2  # the ignored border class
    logits = torch.randn(1, 3, 6, 6)
    assert SoftDiceLoss(3, ignore_index=2)(logits, target) == 0  # only background left, not scored
    target[0, 4:, :2] = 1
    perfect = confident(torch.where(target == 2, torch.zeros_like(target), target), 3)
    assert SoftDiceLoss(3, ignore_index=2)(perfect, target) < 1e-3
    # all-background batch: no scored class present, the Dice term is 0 and has no NaN gradient
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss = SoftDiceLoss(2)(logits, torch.zeros(2, 4, 4, dtype=torch.long))
    loss.backward()
    assert loss == 0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5]])
def test_7_a_batch_whose_pixels_are_all_ignored_has_a_finite_zero_gradient_loss(weights):
    loss = SegmentationLoss("ce+dice", 3, weights, ignore_index=2)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    value = loss(logits, torch.full((2, 8, 8), 2))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(logits.grad).all() and logits.grad.abs().max() == 0
    target = torch.randint(0, 3, (2, 8, 8))  # and otherwise the usual weighted mean
    expected = torch.nn.functional.cross_entropy(
        logits, target, weight=None if weights is None else torch.tensor(weights), ignore_index=2
    )
    torch.testing.assert_close(loss.cross_entropy(logits, target), expected)

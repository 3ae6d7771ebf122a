"""segattn.metrics.scores: Dice and IoU checked against direct computations and torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from segattn.metrics.scores import SegmentationScores, flatten_scores


def test_scores_match_direct_computation_and_torchmetrics():
    torch.manual_seed(0)
    preds, target = torch.randint(0, 3, (5, 16, 16)), torch.randint(0, 3, (5, 16, 16))
    scores = SegmentationScores(3, ["bg", "a", "b"], include_background=True)
    scores.update(preds[:2], target[:2])
    scores.update(preds[2:], target[2:])
    report = scores.compute()
    jaccard = MulticlassJaccardIndex(3, average="none", ignore_index=None, zero_division=0)(preds, target)
    f1 = MulticlassF1Score(3, average="none", multidim_average="global", ignore_index=None, zero_division=0)(
        preds, target
    )
    assert report["num_images"] == 5
    for c, name in enumerate(["bg", "a", "b"]):
        assert report["iou"]["per_class"][name] == pytest.approx(float(jaccard[c]))
        assert report["dice"]["per_class"][name] == pytest.approx(float(f1[c]))
    assert report["iou"]["mean"] == pytest.approx(float(jaccard.mean()))
    # per-image mean by hand
    values = []
    for p, t in zip(preds, target):
        for c in range(3):
            inter = ((p == c) & (t == c)).sum().item()
            union = ((p == c) | (t == c)).sum().item()
            if union:
                values.append(inter / union)
    assert report["iou"]["per_image_mean"] == pytest.approx(sum(values) / len(values))


def test_background_excluded_by_default_and_empty_classes_left_out():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2] = 1  # class 1 only in image 0; class 2 nowhere
    preds = target.clone()
    preds[1, 0, 0] = 1  # one false positive of class 1 in image 1
    scores = SegmentationScores(3, ["bg", "pet", "other"])
    scores.update(preds, target)
    report = scores.compute()
    assert math.isnan(report["iou"]["per_class"]["other"])
    assert report["iou"]["mean"] == pytest.approx(8 / 9)  # class 1 only: tp 8, fp 1
    assert report["iou"]["per_image_mean"] == pytest.approx((1.0 + 0.0) / 2)
    flat = flatten_scores(report, "val")
    assert "val/iou/other" not in flat and flat["val/iou"] == pytest.approx(8 / 9)


def test_ignore_index_pixels_are_not_scored():
    target = torch.tensor([[[0, 1], [2, 2]]])
    preds = torch.tensor([[[0, 1], [1, 0]]])
    scores = SegmentationScores(3, ["bg", "pet", "border"], ignore_index=2)
    scores.update(preds, target)
    report = scores.compute()
    assert report["iou"]["per_class"]["pet"] == 1.0
    assert math.isnan(report["iou"]["per_class"]["border"])

"""segattn.data.synthetic: the generated shapes dataset."""

from __future__ import annotations

import numpy as np
import torch

from segattn.data import SyntheticDataModule
from tests.helpers.data import SPLITS


def test_synthetic_data_is_deterministic_and_learnable_shape():
    a, b = SyntheticDataModule(image_size=32, seed=3), SyntheticDataModule(image_size=32, seed=3)
    x, y = a.dataset("val")[2], b.dataset("val")[2]
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    assert x["mask"].max() >= 1
    assert SyntheticDataModule(num_classes=3, in_channels=1, image_size=16).dataset("test")[0]["image"].shape == (
        1,
        16,
        16,
    )


def test_synthetic_defaults_names_and_splits_differ():
    dm = SyntheticDataModule()
    assert (dm.image_size, dm.num_classes, dm.in_channels, dm.seed, dm.ignore_index) == (64, 2, 3, 0, None)
    assert [len(dm.dataset(s)) for s in SPLITS] == [16, 8, 8]
    assert dm.dataset("train").names[3] == "train_0003" and dm.dataset("test").names[0] == "test_0000"
    a, b = dm.dataset("train")[0], dm.dataset("val")[0]
    assert a["image"].shape == (3, 64, 64) and not torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["mask"], SyntheticDataModule(seed=1).dataset("train")[0]["mask"])


def test_synthetic_intensity_follows_the_class():
    dm = SyntheticDataModule(num_classes=3, in_channels=1, image_size=32, num_train=6)
    means = {k: [] for k in range(3)}
    for i in range(6):
        item = dm.dataset("train")[i]
        assert item["image"].shape == (1, 32, 32)
        assert set(item["mask"].unique().tolist()) <= {0, 1, 2}
        for k in range(3):
            if (item["mask"] == k).any():
                means[k].append(float(item["image"][0][item["mask"] == k].mean()))
    averaged = [np.mean(means[k]) for k in range(3) if means[k]]
    assert averaged == sorted(averaged) and len(averaged) >= 2  # brighter for higher classes

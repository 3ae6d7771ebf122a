"""segattn.cli.inference_setup: the inference settings that evaluate and predict derive from model and data."""

from __future__ import annotations

import pytest

from segattn.data import ISBI2012DataModule


def test_test_time_flips_follow_the_training_flips_unless_set(tiny_isbi):
    from segattn.cli.inference_setup import prepare_inference
    from segattn.data import ISBI2012DataModule
    from segattn.training.module import SegmentationModule

    net = dict(in_channels=1, depth=2, base_channels=8, heads=2)
    for trained_vertical, given, expected in [
        (False, None, False),
        (True, None, True),
        (False, True, True),
        (True, False, False),
    ]:
        module = SegmentationModule(net=net, class_names=["cell", "membrane"])
        prepare_inference(
            module,
            ISBI2012DataModule(root=str(tiny_isbi), image_size=16, vertical_flip=trained_vertical),
            {"tta": True, "tta_vertical": given},
        )
        assert module.inference.tta_vertical is expected


def test_inference_setup_of_evaluate_and_predict(tiny_isbi):
    from segattn.cli.inference_setup import prepare_inference
    from segattn.errors import ConfigError
    from segattn.training.module import SegmentationModule

    net = dict(in_channels=1, depth=2, base_channels=8, heads=2)
    resized = ISBI2012DataModule(root=str(tiny_isbi), image_size=16)
    module = SegmentationModule(net=net, class_names=["cell", "membrane"])
    prepare_inference(module, resized, {"mode": "sliding_window", "tta": None})
    assert (
        module.inference.window == 16 and resized.native_size
    )  # the window of the training size, images at native scale
    assert resized.dataset("test")[0]["image"].shape == (1, 32, 32) and resized.test_dataloader().batch_size == 1
    patches = ISBI2012DataModule(root=str(tiny_isbi), patch_size=16)
    module = SegmentationModule(
        net=net, class_names=["cell", "membrane"], inference={"mode": "sliding_window", "window": 16}
    )
    with pytest.raises(ConfigError, match="sliding window only"):
        prepare_inference(module, patches, {"mode": "resize"})
    with pytest.raises(ConfigError, match=r"inference.window: got 10; the model needs a multiple of 2\*\*depth = 4"):
        prepare_inference(module, patches, {"window": 10})
    with pytest.raises(ConfigError, match=r"inference: unknown keys \['stride'\]"):
        prepare_inference(module, patches, {"stride": 3})

"""segattn.cli.common: what the commands share: device, data from the checkpoint, class check, clean messages."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from segattn.cli.common import check_classes_match, clean_message
from segattn.errors import CheckpointError, DatasetContentError
from tests.helpers.commands import run


def test_bad_device_split_and_data_key_are_config_errors_and_data_keys_override(smoke_run, tmp_path):
    # ConfigError is in every command's list of clean failures (one message, exit code 2).
    from omegaconf import OmegaConf

    from segattn.checkpoint import load_checkpoint
    from segattn.cli.common import datamodule_from_checkpoint, pick_device
    from segattn.cli.evaluate import evaluate
    from segattn.errors import ConfigError

    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    with pytest.raises(ConfigError, match=r"device: got 'gpu'; allowed: auto, cpu, cuda"):
        pick_device("gpu")
    with pytest.raises(ConfigError, match=r"split: got 'train'; allowed: test, val"):
        evaluate(OmegaConf.create({"split": "train"}))
    # A data key the checkpoint's data class does not take (the generated shapes have no mask files).
    with pytest.raises(ConfigError, match=r"data\.mask_suffix: unknown key; allowed keys: augment"):
        datamodule_from_checkpoint(load_checkpoint(ckpt), {"mask_suffix": "_m", "root": None}, str(ckpt))
    # On the command line: listed data keys override as data.<key>, any other as +data.<key>.
    run(
        "evaluate.py",
        f"ckpt_path={ckpt}",
        "data.image_size=48",
        "+data.num_test=3",
        f"hydra.run.dir={tmp_path / 'sized'}",
    )
    assert json.loads((tmp_path / "sized" / "metrics.json").read_text())["num_images"] == 3
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 30)).save(tmp_path / "images" / "a.png")
    device = run(
        "segattn-predict",
        f"ckpt_path={ckpt}",
        f"input_dir={tmp_path / 'images'}",
        "device=gpu",
        f"hydra.run.dir={tmp_path / 'device'}",
        check=False,
    )
    assert (
        device.returncode == 2
        and "device: got 'gpu'" in device.stdout + device.stderr
        and "Traceback" not in device.stdout + device.stderr
    )


class _Failing(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise DatasetContentError("cannot read image file /x/broken.jpg: truncated")


def test_4_an_error_from_a_loader_worker_keeps_its_own_message():
    loader = torch.utils.data.DataLoader(_Failing(), num_workers=1)
    with pytest.raises(DatasetContentError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # what a worker error looks like
    assert clean_message(info.value) == "cannot read image file /x/broken.jpg: truncated"


def test_9_classes_of_checkpoint_and_data_must_agree():
    checkpoint = {"hyper_parameters": {"class_names": ["background", "pet"], "net": {"in_channels": 3}}}
    trimap = SimpleNamespace(class_names=["background", "pet", "border"], in_channels=3)
    with pytest.raises(
        CheckpointError,
        match=r"trained on the classes \['background', 'pet'\], but the data as configured has "
        r"\['background', 'pet', 'border'\]",
    ):
        check_classes_match(checkpoint, trimap, "b.ckpt")
    checkpoint["hyper_parameters"]["class_names"] = trimap.class_names
    check_classes_match(checkpoint, trimap, "t.ckpt")
    with pytest.raises(CheckpointError, match="trained on the classes"):
        check_classes_match(checkpoint, SimpleNamespace(class_names=["background", "pet"], in_channels=3), "t.ckpt")

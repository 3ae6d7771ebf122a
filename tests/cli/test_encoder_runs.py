"""Training, resuming, evaluating, exporting and predicting with a torchvision encoder."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from torchvision.models import get_model

from tests.helpers.commands import run
from tests.helpers.files import folder

SMOKE = ["experiment=smoke", "trainer.enable_progress_bar=false", "data.image_size=64", "model.encoder=resnet18"]


@pytest.fixture
def cached_weights(tmp_path, monkeypatch):
    """resnet18's "ImageNet" weights placed where the torch hub cache keeps them (random values:
    the loading path is real, the download is not)."""
    home = tmp_path / "torch"
    path = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(get_model("resnet18", weights=None).state_dict(), path)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return path


@pytest.mark.slow
def test_a_pretrained_encoder_run_records_its_normalisation_and_resumes_evaluates_exports_predicts(
    tmp_path, cached_weights
):
    run_dir = tmp_path / "run"
    run(
        "train.py",
        *SMOKE,
        "model.encoder_weights=imagenet",
        "trainer.max_epochs=1",
        "module.encoder_lr_scale=0.1",
        "callbacks.attention_images.every_n_epochs=1",
        f"hydra.run.dir={run_dir}",
    )
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["config"]["data"]["normalization"] == config["data"]["normalization"]
    lrs = {g["name"]: g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]}
    assert set(lrs) == {"weights", "norms_and_biases", "encoder_weights", "encoder_norms_and_biases"}
    run(
        "train.py",
        *SMOKE,
        "model.encoder_weights=imagenet",
        "trainer.max_epochs=1",
        "module.encoder_lr_scale=0.1",
        "callbacks.attention_images.every_n_epochs=1",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={run_dir}",
    )  # resuming the finished run: nothing left to train, no error
    best = run_dir / "checkpoints" / "best.ckpt"
    # evaluation and prediction rebuild the model from the checkpoint alone: no weights file needed
    cached_weights.unlink()
    run(
        "evaluate.py",
        f"ckpt_path={best}",
        "inference.mode=sliding_window",
        "inference.window=64",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_images"] == 8
    model = tmp_path / "model.pt"
    run(
        "segattn-export",
        f"ckpt_path={best}",
        "format=torchscript",
        f"output={model}",
        "check_sizes=[[64,64],[64,96]]",
        f"hydra.run.dir={tmp_path / 'x'}",
    )
    images = folder(tmp_path / "imgs", splits=("x",), size=(40, 52)) / "x" / "images"
    run(
        "segattn-predict",
        f"ckpt_path={model}",
        f"input_dir={images}",
        f"output_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'p'}",
    )
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == [
        "x0_mask.png",
        "x1_mask.png",
        "x2_mask.png",
    ]


def torchvision_name(key: str) -> str:
    """The torchvision resnet name of an encoder weight: stages.0.0 is conv1, stages.1.1 layer1, ..."""
    stage, rest = key.split(".", 1)
    if stage == "0":
        index, name = rest.split(".", 1)
        return f"{'conv1' if index == '0' else 'bn1'}.{name}"
    if stage == "1":
        return "layer1." + rest.split(".", 1)[1]
    return f"layer{stage}.{rest}"


@pytest.mark.slow
def test_a_frozen_encoder_keeps_its_weights_and_statistics_under_two_process_ddp(tmp_path, cached_weights):
    run_dir = tmp_path / "ddp"
    run(
        "train.py",
        *SMOKE,
        "model.encoder_weights=imagenet",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "module.freeze_encoder_epochs=1",
        "callbacks.attention_images=null",
        f"hydra.run.dir={run_dir}",
    )
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2  # trained: 16 images over 2 processes, batch 4
    state = checkpoint["state_dict"]
    pretrained = torch.load(cached_weights, map_location="cpu", weights_only=True)
    encoder = {k[len("net.encoder.stages.") :]: v for k, v in state.items() if k.startswith("net.encoder.stages.")}
    assert len(encoder) > 100
    for key, value in encoder.items():  # weights and BatchNorm statistics, exactly as loaded
        assert torch.equal(value, pretrained[torchvision_name(key)]), key

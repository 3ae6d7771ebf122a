"""segattn.models.encoders: torchvision backbones under the attention decoder."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import get_model

from segattn.models import UNetAttention
from segattn.models.encoders import STAGES, TorchvisionEncoder, ensure_weights, normalization, weights_file
from segattn.models.settings import TORCHVISION_CHANNELS


def test_the_encoders_the_config_check_knows_are_the_ones_that_are_built():
    assert set(STAGES) == set(TORCHVISION_CHANNELS)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_encoder_gives_five_maps_at_strides_2_to_32_with_the_channels_the_config_check_uses(name):
    encoder = TorchvisionEncoder(name, in_channels=3).eval()
    features = encoder(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in features] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    assert encoder.channels == [f.shape[1] for f in features] == list(TORCHVISION_CHANNELS[name])


@pytest.mark.parametrize("attention", [(False, False), (True, False), (False, True), (True, True)])
def test_every_ablation_runs_with_a_torchvision_encoder_and_grey_input(attention):
    sa, ca = attention
    net = UNetAttention(in_channels=1, num_classes=3, encoder="resnet18", self_attention=sa, cross_attention=ca).eval()
    x = torch.randn(2, 1, 64, 96)
    logits = net(x)
    assert logits.shape == (2, 3, 64, 96) and net.depth == 5 and net.levels == 4
    explicit, maps = net(x, return_attention=True)
    assert torch.allclose(logits, explicit, atol=1e-5)
    assert (maps.self_attention is not None) == sa and len(maps.gates) == (4 if ca else 0)
    if ca:  # level 0 gates the stride-2 skip (64 channels of the stem)
        assert tuple(maps.gates[0].shape) == (2, 64, 32, 48)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth = 32"):
        net(torch.randn(1, 1, 48, 64))


def test_grey_input_sums_the_rgb_filters_of_the_first_convolution():
    rgb, grey = TorchvisionEncoder("resnet18", 3), TorchvisionEncoder("resnet18", 1)
    grey.stages[0][0].weight.data.copy_(rgb.stages[0][0].weight.data.sum(1, keepdim=True))  # same draw
    for stage_rgb, stage_grey in zip(rgb.stages[1:], grey.stages[1:]):
        stage_grey.load_state_dict(stage_rgb.state_dict())
    rgb.stages[0][1].load_state_dict(grey.stages[0][1].state_dict())
    rgb.eval(), grey.eval()
    x = torch.rand(1, 1, 64, 64)
    assert torch.allclose(rgb(x.repeat(1, 3, 1, 1))[-1], grey(x)[-1], atol=1e-4)


def test_imagenet_weights_load_from_the_hub_cache_as_torchvision_loads_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = get_model("resnet18", weights=None)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    path = weights_file("resnet18")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert ensure_weights("resnet18") == path  # cached: nothing to download
    net = UNetAttention(in_channels=3, encoder="resnet18", encoder_weights="imagenet")
    ours = net.encoder
    assert torch.equal(ours.stages[0][0].weight, reference.conv1.weight)
    assert torch.equal(ours.stages[1][1][0].conv1.weight, reference.layer1[0].conv1.weight)
    assert torch.equal(ours.stages[4][1].bn2.running_var, reference.layer4[1].bn2.running_var)
    grey = UNetAttention(in_channels=1, encoder="resnet18", encoder_weights="imagenet")
    assert torch.allclose(grey.encoder.stages[0][0].weight, reference.conv1.weight.sum(1, keepdim=True))
    assert normalization("resnet18", "imagenet", 3) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    mean, std = normalization("resnet18", "imagenet", 1)
    assert mean == pytest.approx([(0.485 + 0.456 + 0.406) / 3]) and std == pytest.approx([(0.229 + 0.224 + 0.225) / 3])
    assert normalization("resnet18", None, 3) is None and normalization("unet", None, 3) is None


def test_weights_neither_cached_nor_downloadable_name_the_file_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, progress=True):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as info:
        ensure_weights("resnet34")
    message = str(info.value)
    assert "resnet34-b627a593.pth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "model.encoder_weights=null" in message
    with pytest.raises(FileNotFoundError, match="not in the torch hub cache"):
        UNetAttention(encoder="resnet34", encoder_weights="imagenet")


def test_encoder_settings_are_checked():
    with pytest.raises(ValueError, match="encoder: got 'vgg16'; allowed: unet, resnet18"):
        UNetAttention(encoder="vgg16")
    with pytest.raises(ValueError, match="encoder=unet has no pretrained weights"):
        UNetAttention(encoder_weights="imagenet")
    with pytest.raises(ValueError, match="heads: got 7, which does not divide the 512 channels of the bottleneck"):
        UNetAttention(encoder="resnet18", heads=7)

"""torchvision backbones as U-Net encoders: five feature maps at strides 2, 4, 8, 16 and 32.

The first four are the skip connections (the stem's stride-2 map first, as
segmentation_models_pytorch does), the last is the bottleneck the MHSA runs on. Pretrained
ImageNet weights come through torchvision's own weights API: they are read from the torch hub
cache (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), where
``ensure_weights`` downloads them once with a progress bar; building a model never downloads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from segattn.models.settings import ENCODER_WEIGHTS, ENCODERS


def _resnet_stages(model: nn.Module) -> list[nn.Module]:
    return [
        nn.Sequential(model.conv1, model.bn1, model.relu),
        nn.Sequential(model.maxpool, model.layer1),
        model.layer2,
        model.layer3,
        model.layer4,
    ]


def _efficientnet_stages(model: nn.Module) -> list[nn.Module]:
    f = model.features  # stem+block 1 (stride 2), 2 (4), 3 (8), 4-5 (16), 6-7 (32); the 1x1 head conv is left out
    return [f[0:2], f[2], f[3], f[4:6], f[6:8]]


#: How to cut each torchvision model into its five stages (the names and channels: ``settings.TORCHVISION_CHANNELS``).
STAGES: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    "resnet18": _resnet_stages,
    "resnet34": _resnet_stages,
    "resnet50": _resnet_stages,
    "efficientnet_b0": _efficientnet_stages,
    "efficientnet_b2": _efficientnet_stages,
}


def imagenet_weights(name: str):
    """torchvision's default ImageNet weights enum member for ``name``."""
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


def weights_file(name: str) -> Path:
    """Where the torch hub cache keeps ``name``'s ImageNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_weights(name).url)


def missing_weights_message(name: str, reason: str) -> str:
    path = weights_file(name)
    return (
        f"model.encoder_weights=imagenet: the ImageNet weights of {name} are not in the torch hub cache ({path}) "
        f"and could not be downloaded ({reason}). Copy {path.name} from {imagenet_weights(name).url} into "
        f"{path.parent} (TORCH_HOME chooses another cache), or train from scratch with model.encoder_weights=null"
    )


def ensure_weights(name: str) -> Path:
    """The cached weights file of ``name``, downloaded first (with a progress bar) when missing.
    Raises ``FileNotFoundError`` with ``missing_weights_message`` when it can be neither found nor
    downloaded (offline)."""
    path = weights_file(name)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(imagenet_weights(name).url, str(path), progress=True)
    except Exception as err:  # noqa: BLE001 - no network, a proxy, a full disk: all end here
        raise FileNotFoundError(missing_weights_message(name, f"{type(err).__name__}: {err}")) from None
    return path


def normalization(name: str | None, weights: str | None, in_channels: int) -> tuple[list[float], list[float]] | None:
    """The input normalisation the weights were trained with (ImageNet mean and std, for grey
    input their channel means), or None for an encoder trained from scratch."""
    if name in (None, "unet") or weights is None:
        return None
    transform = imagenet_weights(name).transforms()
    mean, std = list(transform.mean), list(transform.std)
    if in_channels == 1:
        return [sum(mean) / 3], [sum(std) / 3]
    return mean, std


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The stem convolution for ``in_channels`` inputs: grey input gets the sum of the RGB filters
    (a grey image repeated three times would give the same response), other counts the RGB
    filters repeated and rescaled, as segmentation_models_pytorch does."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    with torch.no_grad():
        weight = conv.weight
        if in_channels == 1:
            new.weight.copy_(weight.sum(1, keepdim=True))
        else:
            repeats = -(-in_channels // weight.shape[1])
            new.weight.copy_(weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _first_conv(stage: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the first convolution of the stem and that convolution's attribute name."""
    for parent in stage.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, child_name
    raise ValueError("the encoder's stem has no convolution")


class TorchvisionEncoder(nn.Module):
    """A torchvision classification network cut into five stages (strides 2 to 32).

    ``weights="imagenet"`` loads torchvision's ImageNet weights from the torch hub cache
    (``ensure_weights`` puts them there); ``None`` starts from torchvision's random initialisation.
    ``channels``: the output channels of the five stages.
    """

    def __init__(self, name: str, in_channels: int = 3, weights: str | None = None) -> None:
        super().__init__()
        from torchvision.models import get_model

        if name not in STAGES:
            raise ValueError(f"encoder: got {name!r}; allowed: {', '.join(ENCODERS)}")
        model = get_model(name, weights=None)
        if weights == "imagenet":
            path = weights_file(name)
            if not path.is_file():
                raise FileNotFoundError(missing_weights_message(name, "not downloaded yet"))
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        elif weights is not None:
            raise ValueError(f"encoder_weights: got {weights!r}; allowed: null, {', '.join(ENCODER_WEIGHTS)}")
        stages = STAGES[name](model)
        parent, attribute = _first_conv(stages[0])
        setattr(parent, attribute, adapt_first_conv(getattr(parent, attribute), in_channels))
        self.name = name
        self.stages = nn.ModuleList(stages)
        with torch.no_grad():
            was = self.training
            self.eval()
            probe = self(torch.zeros(1, in_channels, 64, 64))
            self.train(was)
        self.channels = [int(f.shape[1]) for f in probe]

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

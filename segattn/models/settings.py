"""The rules of the network's settings, in one place.

``UNetAttention`` and its blocks raise on a broken setting; ``validate_train_config`` reports
every broken ``model.*`` setting at once before any data is read. Both ask these functions, so a
rule and its message exist once. Each returns problems as "<setting>: got <value>; <what is
allowed>", without the config group's prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segattn.values import bool_problem, is_int, is_number

GATE_CHANNELS = ("one", "skip")
#: Encoders: the U-Net's own double-conv encoder, or a torchvision backbone (``models/encoders.py``).
TORCHVISION_CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "efficientnet_b0": (16, 24, 40, 112, 320),
    "efficientnet_b2": (16, 24, 48, 120, 352),
}
ENCODERS = ("unet", *TORCHVISION_CHANNELS)
ENCODER_WEIGHTS = ("imagenet",)
TORCHVISION_DEPTH = 5  # strides 2 to 32: inputs must be multiples of 32


def network_depth(settings: Mapping[str, Any]) -> Any:
    """Downsamplings of the network: ``depth`` for the U-Net encoder, 5 for a torchvision one."""
    return settings.get("depth") if settings.get("encoder", "unet") == "unet" else TORCHVISION_DEPTH


def encoder_channels(settings: Mapping[str, Any]) -> list[int] | None:
    """Channels of the skips (full resolution or stride 2 first) and, last, of the bottleneck."""
    encoder = settings.get("encoder", "unet")
    if encoder != "unet":
        return list(TORCHVISION_CHANNELS[encoder]) if encoder in TORCHVISION_CHANNELS else None
    depth, base = settings.get("depth"), settings.get("base_channels")
    if not (is_int(depth) and depth >= 1 and is_int(base) and base >= 1):
        return None
    return [base * 2**i for i in range(depth + 1)]


def nearest_valid_sizes(size: int, multiple: int) -> tuple[int, int]:
    """The multiples of ``multiple`` just below and above ``size`` (the lower one at least ``multiple``)."""
    lower = max(multiple, size // multiple * multiple)
    return lower, (size // multiple + 1) * multiple


def size_problem(name: str, size: int, depth: int) -> str | None:
    """An image side (or patch, or window) the network cannot take: not a positive multiple of
    2**depth. The message names the nearest sizes it can take."""
    multiple = 2**depth
    if size >= multiple and size % multiple == 0:
        return None
    lower, upper = nearest_valid_sizes(size, multiple)
    nearest = str(lower) if lower == upper or lower == size else f"{lower} or {upper}"
    return f"{name}: got {size}; must be a multiple of 2**depth = {multiple} (depth={depth}; nearest valid: {nearest})"


def heads_problem(channels: int, heads: Any, what: str = "channels it attends over") -> str | None:
    """Attention heads must split the channels evenly."""
    name = "heads"
    if not is_int(heads) or heads < 1:
        return f"{name}: got {heads!r}; expected an integer >= 1"
    if channels % heads:
        valid = [h for h in range(1, min(channels, 64) + 1) if channels % h == 0]
        return (
            f"{name}: got {heads}, which does not divide the {channels} {what} "
            f"(attention splits the channels across heads); allowed heads include {valid}"
        )
    return None


def positional_channels_problem(channels: int, name: str) -> str | None:
    """The 2D sine-cosine positional encoding needs a sine and a cosine for rows and for columns."""
    if channels % 4:
        return (
            f"{name}: got {channels} attended channels; with attention they must be a multiple of 4 "
            "(2D positional encoding)"
        )
    return None


def heads_for(channels: int, head_dim: int) -> int:
    """Heads of an attention over ``channels``: ``channels // head_dim``, at least 1, lowered to
    the nearest count that divides ``channels``.

    One head count for every level would give the shallow, narrow skips head dimensions of 2–4
    (8 heads on 16 channels), where a dot product carries little and the CPU kernels run slowest;
    a head dimension keeps every head equally expressive and lets wide levels have more heads.
    """
    heads = max(1, channels // head_dim)
    while channels % heads:
        heads -= 1
    return heads


def gate_problems(
    head_dim: Any, max_tokens: Any, gate_channels: Any, gate_init: Any, gate_batchnorm: Any = True
) -> list[str]:
    """Settings of the MHCA gates."""
    problems = []
    if not is_int(head_dim) or head_dim < 1:
        problems.append(f"head_dim: got {head_dim!r}; expected an integer >= 1")
    if not is_int(max_tokens) or max_tokens < 1:
        problems.append(f"max_tokens: got {max_tokens!r}; expected an integer >= 1")
    if gate_channels not in GATE_CHANNELS:
        problems.append(f"gate_channels: got {gate_channels!r}; allowed: {', '.join(GATE_CHANNELS)}")
    if not is_number(gate_init) or not 0 < gate_init < 1:
        problems.append(f"gate_init: got {gate_init!r}; expected a value in (0, 1)")
    problems += [p for p in [bool_problem("gate_batchnorm", gate_batchnorm)] if p]
    return problems


def registers_problem(registers: Any) -> str | None:
    if not is_int(registers) or registers < 0:
        return f"registers: got {registers!r}; expected an integer >= 0"
    return None


def valid_cross_attention_levels(levels: Any, depth: int) -> bool:
    """True for None (every level) or a non-empty list of skip levels from 0 to ``depth - 1``."""
    if levels is None:
        return True
    return isinstance(levels, (list, tuple)) and bool(levels) and all(is_int(i) and 0 <= i < depth for i in levels)


def network_problems(settings: Mapping[str, Any]) -> list[str]:
    """Every problem of ``UNetAttention``'s keyword arguments (defaults filled in by the caller).

    ``in_channels`` and ``num_classes`` may be None: the data fills them in later."""
    problems = []
    for name in ("in_channels", "num_classes", "depth", "base_channels"):
        value = settings.get(name)
        if value is None and name in ("in_channels", "num_classes"):
            continue
        if not is_int(value) or value < 1:
            problems.append(f"{name}: got {value!r}; expected an integer >= 1")
    encoder, weights = settings.get("encoder", "unet"), settings.get("encoder_weights")
    if encoder not in ENCODERS:
        problems.append(f"encoder: got {encoder!r}; allowed: {', '.join(ENCODERS)}")
        return problems
    if weights is not None and weights not in ENCODER_WEIGHTS:
        problems.append(f"encoder_weights: got {weights!r}; allowed: null, {', '.join(ENCODER_WEIGHTS)}")
    elif weights is not None and encoder == "unet":
        problems.append(
            f"encoder_weights: got {weights!r}, but encoder=unet has no pretrained weights; choose a torchvision "
            f"encoder ({', '.join(ENCODERS[1:])}) or encoder_weights=null"
        )
    channels = encoder_channels(settings)
    if channels is None:
        return problems  # the rules below are about the channels and levels the encoder gives
    levels = len(channels) - 1
    deep = settings.get("deep_supervision", 0)
    if not is_int(deep) or not 0 <= deep < levels:
        problems.append(f"deep_supervision: got {deep!r}; expected an integer from 0 to {levels - 1} (skip levels - 1)")
    cross_levels = settings.get("cross_attention_levels")
    if not valid_cross_attention_levels(cross_levels, levels):
        problems.append(
            f"cross_attention_levels: got {cross_levels!r}; expected null (every level) or a non-empty list of "
            f"skip levels from 0 (the largest) to {levels - 1}"
        )
    if settings.get("self_attention"):
        what = "channels of the bottleneck" + (" (base_channels * 2**depth)" if encoder == "unet" else f" ({encoder})")
        problems += [p for p in [heads_problem(channels[-1], settings.get("heads"), what)] if p]
        problems += [p for p in [registers_problem(settings.get("registers", 0))] if p]
    if settings.get("cross_attention"):
        problems += gate_problems(
            settings.get("head_dim"),
            settings.get("max_tokens"),
            settings.get("gate_channels"),
            settings.get("gate_init"),
            settings.get("gate_batchnorm", True),
        )
    base = settings.get("base_channels")
    if encoder == "unet" and (settings.get("self_attention") or settings.get("cross_attention")) and base % 4:
        problems.append(
            f"base_channels: got {base}; with attention it must be a multiple of 4 (2D positional encoding)"
        )
    problems += [p for p in [bool_problem("qk_norm", settings.get("qk_norm"))] if p]
    return problems

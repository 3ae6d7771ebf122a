"""The U-Net Transformer: U-Net with an MHSA bottleneck and MHCA-gated skip connections."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from segattn.models.blocks import DoubleConv, Down, FinalUp, Up
from segattn.models.cross_attention import MultiHeadCrossAttentionGate
from segattn.models.encoders import TorchvisionEncoder
from segattn.models.self_attention import MultiHeadSelfAttention2d
from segattn.models.settings import encoder_channels, network_depth, network_problems, size_problem
from segattn.models.token_pooling import key_value_grid


@dataclass
class AttentionMaps:
    """What the explicit path returns besides the logits.

    ``self_attention``: MHSA weights (B, heads, N, N + R) with N = h·w of the bottleneck and R its
    register tokens, rows = queries (each row sums to 1 over the keys: the N cells, then the
    registers); ``self_attention_size`` = (h, w).
    ``gates[i]``: MHCA gate (B, 1 or C, H, W) of skip level ``gate_levels[i]`` (0 = full
    resolution), in (0, 1); every level unless ``cross_attention_levels`` leaves some out
    (``depth``: the model's number of skip levels).
    ``cross_attention[i]``: MHCA weights (B, heads_i, Nq, Nkv) of that level: one row per query
    cell of the decoder feature's grid ``cross_attention_sizes[i]`` = (hy, wy), one column per
    cell of the key/value grid ``cross_attention_key_sizes[i]`` (pooled when above max_tokens).
    Lists are empty and ``self_attention`` is None for the parts the model does not have.
    """

    self_attention: Tensor | None = None
    self_attention_size: tuple[int, int] | None = None
    gates: list[Tensor] = field(default_factory=list)
    gate_levels: list[int] = field(default_factory=list)
    cross_attention: list[Tensor] = field(default_factory=list)
    cross_attention_sizes: list[tuple[int, int]] = field(default_factory=list)
    cross_attention_key_sizes: list[tuple[int, int]] = field(default_factory=list)
    depth: int = 0  # the model's skip levels (0..depth-1), gated or not


class UNetAttention(nn.Module):
    """U-Net Transformer (Petit et al., MLMI 2021, arXiv 2103.06104).

    Args:
        in_channels: image channels (3 for RGB, 1 for grey).
        num_classes: output logit channels.
        depth: number of 2× downsamplings of the U-Net encoder; inputs must have height and width
            divisible by 2**depth.
        base_channels: channels of the first level, doubled at each downsampling.
        heads: attention heads of the MHSA bottleneck.
        head_dim: channels per head of each MHCA gate: a skip of C channels gets
            max(1, C // head_dim) heads (lowered to a divisor of C).
        self_attention: use the MHSA bottleneck.
        cross_attention: gate the skip connections with MHCA.
        cross_attention_levels: the skip levels that MHCA gates (0 = full resolution); None = all,
            as in the paper. Leaving out level 0 removes most of MHCA's cost (its queries are the
            decoder's largest grid).
        max_tokens: cap on the keys and values of each MHCA (queries, and so the gates, keep the
            decoder's full grid; cost stays linear in pixels).
        gate_channels: "skip" (one gate per skip channel) or "one" (one spatial gate per level).
        deep_supervision: number of auxiliary 1×1 heads on the decoder levels above the output
            (0 = none); their logits come from ``forward_with_aux`` for an auxiliary loss.
        qk_norm: LayerNorm of queries and keys per head in every attention (bounded logits).
        gate_init: initial value of every MHCA gate (near 1 the U-Net starts as a plain one).
        gate_batchnorm: BatchNorm between each gate's 1×1 conv and its sigmoid (False: a conv bias
            instead, as in Oktay et al.'s attention gate).
        registers: learned register tokens among the MHSA's keys and values (0 = none): a place for
            attention that no cell needs, instead of the image border.
        encoder: "unet" (the double-conv encoder above) or a torchvision backbone ("resnet18",
            "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b2"; ``models/encoders.py``):
            its stride-2 to stride-16 maps are the skips and its stride-32 map the bottleneck, whose
            channels it decides (``depth`` and ``base_channels`` then do not apply; inputs are
            multiples of 32), and a last upsampling brings the decoder back to the input's size.
        encoder_weights: None (from scratch) or "imagenet": torchvision's ImageNet weights, read
            from the torch hub cache (``encoders.ensure_weights`` downloads them).

    ``forward(x)`` returns logits (B, num_classes, H, W) through fused attention kernels;
    ``forward(x, return_attention=True)`` returns ``(logits, AttentionMaps)`` through the explicit
    path, which materialises the attention weights (use it for visualisation, not training).
    ``forward_with_aux(x)`` returns ``(logits, [auxiliary logits, coarsest last])`` for training.
    With both switches false the model is a plain U-Net without attention parameters.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        depth: int = 4,
        base_channels: int = 32,
        heads: int = 8,
        head_dim: int = 32,
        self_attention: bool = True,
        cross_attention: bool = True,
        max_tokens: int = 256,
        gate_channels: str = "skip",
        deep_supervision: int = 0,
        qk_norm: bool = True,
        gate_init: float = 0.9,
        gate_batchnorm: bool = True,
        cross_attention_levels: list[int] | None = None,
        registers: int = 0,
        encoder: str = "unet",
        encoder_weights: str | None = None,
    ) -> None:
        super().__init__()
        problems = network_problems({k: v for k, v in locals().items() if k in NETWORK_SETTINGS})
        if problems:
            raise ValueError("UNetAttention: " + "; ".join(problems))
        settings = {k: v for k, v in locals().items() if k in NETWORK_SETTINGS}
        channels = encoder_channels(settings)
        self.depth = network_depth(settings)  # downsamplings: inputs are multiples of 2**depth
        self.levels = len(channels) - 1  # skip connections, level 0 the largest
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.encoder_name = encoder
        gated = list(range(self.levels)) if cross_attention_levels is None else sorted(set(cross_attention_levels))
        if encoder == "unet":  # attribute names kept: checkpoints name these weights inc.* and downs.*
            self.inc = DoubleConv(in_channels, channels[0])
            self.downs = nn.ModuleList(Down(channels[i], channels[i + 1]) for i in range(depth))
            self.encoder = None
        else:
            self.encoder = TorchvisionEncoder(encoder, in_channels, encoder_weights)
        self.self_attention = (
            MultiHeadSelfAttention2d(channels[-1], heads, qk_norm, registers) if self_attention else None
        )
        # Keyed by level ("0" = the largest skip): the same state-dict keys as a list of all levels.
        self.cross_attention = (
            nn.ModuleDict(
                {
                    str(i): MultiHeadCrossAttentionGate(
                        channels[i],
                        channels[i + 1],
                        head_dim,
                        max_tokens,
                        gate_channels,
                        qk_norm,
                        gate_init,
                        gate_batchnorm,
                    )
                    for i in gated
                }
            )
            if cross_attention
            else None
        )
        self.ups = nn.ModuleList(Up(channels[i + 1], channels[i]) for i in range(self.levels))
        # A torchvision encoder's largest skip is at stride 2: one more upsampling to the input's size.
        self.final = None if encoder == "unet" else FinalUp(channels[0])
        self.head = nn.Conv2d(channels[0] if self.final is None else self.final.out_channels, num_classes, 1)
        # Auxiliary heads on decoder levels 1..deep_supervision (their outputs at coarser and coarser grids).
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(channels[i], num_classes, kernel_size=1) for i in range(1, deep_supervision + 1)
        )

    def check_input_size(self, height: int, width: int) -> None:
        """Raise a ValueError naming the size and the nearest valid sizes if not divisible by 2**depth."""
        for name, size in (("input height", height), ("input width", width)):
            problem = size_problem(name, size, self.depth)
            if problem:
                raise ValueError(f"{problem}; resize or pad the image")

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, AttentionMaps]:
        logits, maps, _ = self._run(x, return_attention, with_aux=False)
        return (logits, maps) if return_attention else logits

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the auxiliary heads' logits (level 1 first, each at its level's resolution)."""
        logits, _, aux = self._run(x, need_weights=False, with_aux=True)
        return logits, aux

    def _run(self, x: Tensor, need_weights: bool, with_aux: bool) -> tuple[Tensor, AttentionMaps, list[Tensor]]:
        if not torch.jit.is_tracing():  # a traced graph's sizes are tensors; export checks them
            self.check_input_size(*x.shape[-2:])
        maps = AttentionMaps(depth=self.levels)
        if self.encoder is None:
            skips, pooled = [self.inc(x)], []
            for down in self.downs:
                max_pool, double_conv = down
                pooled.append(max_pool(skips[-1]))  # also the skip brought to the coarser grid, for MHCA
                skips.append(double_conv(pooled[-1]))
        else:
            skips = self.encoder(x)
            pooled = [None] * self.levels  # MHCA pools these skips itself
        y = skips.pop()
        if self.self_attention is not None:
            y, weights = self.self_attention(y, need_weights=need_weights)
            if need_weights:
                maps.self_attention, maps.self_attention_size = weights, (y.shape[-2], y.shape[-1])
        aux: list[Tensor] = []
        for level in reversed(range(self.levels)):
            skip = skips[level]
            if self.cross_attention is not None and str(level) in self.cross_attention:
                gate_module = self.cross_attention[str(level)]
                skip, gate, weights = gate_module(skip, y, need_weights=need_weights, pooled_skip=pooled[level])
                if need_weights:
                    maps.gates.insert(0, gate)
                    maps.gate_levels.insert(0, level)
                    maps.cross_attention.insert(0, weights)
                    maps.cross_attention_sizes.insert(0, (y.shape[-2], y.shape[-1]))
                    maps.cross_attention_key_sizes.insert(
                        0, key_value_grid(y.shape[-2], y.shape[-1], gate_module.max_tokens)
                    )
            y = self.ups[level](y, skip)
            if with_aux and 1 <= level <= len(self.aux_heads):
                aux.insert(0, self.aux_heads[level - 1](y))
        if self.final is not None:
            y = self.final(y)
        return self.head(y), maps, aux


#: The constructor's settings (``segattn.models.settings.network_problems`` checks them).
NETWORK_SETTINGS = tuple(inspect.signature(UNetAttention.__init__).parameters)[1:]

"""Convolutional building blocks of the U-Net: double conv, encoder step, decoder upsampling."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DoubleConv(nn.Sequential):
    """(3×3 conv → BatchNorm → ReLU) twice: the basic U-Net block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """Encoder step: 2×2 max-pool halves the resolution, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """Decoder step: upsample the coarse feature ×2 to the skip's channels, concatenate, double conv.

    ``forward`` takes the (possibly gated) skip, so the same block serves the plain U-Net and the
    cross-attention decoder.
    """

    def __init__(self, coarse_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(coarse_channels, skip_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * skip_channels, skip_channels)

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(coarse)], dim=1))


class FinalUp(nn.Sequential):
    """The decoder's last step after an encoder whose largest map is at stride 2 (torchvision
    backbones): upsample ×2 to the input's size (no skip there), halving the channels, then a
    double conv."""

    def __init__(self, in_channels: int) -> None:
        out = max(16, in_channels // 2)
        super().__init__(nn.ConvTranspose2d(in_channels, out, kernel_size=2, stride=2), DoubleConv(out, out))
        self.out_channels = out

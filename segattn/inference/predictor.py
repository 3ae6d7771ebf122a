"""Class probabilities of whole images: one forward pass or a sliding window, optionally averaged
over flipped and turned copies (test-time augmentation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from segattn.inference.sliding_window import sliding_window_probabilities
from segattn.values import is_int

MODES = ("resize", "sliding_window")
#: Maps above this many pixels are accumulated in CPU memory rather than on the input's device.
LARGE_MAP_PIXELS = 4096 * 4096


@dataclass
class InferenceSettings:
    """How whole images are segmented (the ``inference`` config group).

    ``mode``: ``resize`` (the image goes through the network at the training size, the data
    pipeline does the resizing) or ``sliding_window`` (native scale, windows of ``window`` pixels,
    Gaussian-weighted, ``overlap`` between neighbours, ``batch_size`` windows per forward pass).
    ``window``: null = the training patch size (``data.patch_size``), else ``data.image_size``.
    ``tta``: average the softmax over flipped copies: horizontal (2 passes), and with
    ``tta_vertical`` also vertical and both (4 passes). ``tta_vertical`` null = as the model was
    trained (``data.vertical_flip``), as nnU-Net mirrors only along its training axes: a model
    that never saw an image upside down has not learnt what one looks like. ``tta_rotate90``: also
    the quarter turns, all eight symmetries of the square (8 passes); null = as trained
    (``data.rotate90``). ``max_pixels``: the largest image read (width × height); null = Pillow's
    guard against decompression bombs (about 179 million).
    """

    mode: str = "resize"
    window: int | None = None
    overlap: float = 0.5
    batch_size: int = 4
    tta: bool = False
    tta_vertical: bool | None = None
    tta_rotate90: bool | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"inference.mode: got {self.mode!r}; allowed: {', '.join(MODES)}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"inference.overlap: got {self.overlap}; expected a fraction in [0, 1)")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"inference.batch_size: got {self.batch_size!r}; expected an integer >= 1")
        for key in ("tta_vertical", "tta_rotate90"):
            if getattr(self, key) not in (None, True, False):
                raise ValueError(f"inference.{key}: got {getattr(self, key)!r}; expected true, false or null")
        if self.max_pixels is not None and (not is_int(self.max_pixels) or self.max_pixels < 1):
            raise ValueError(f"inference.max_pixels: got {self.max_pixels!r}; expected a positive integer or null")
        if self.window is not None and (not is_int(self.window) or self.window < 1):
            raise ValueError(f"inference.window: got {self.window!r}; expected a positive integer or null")


def flips(tta: bool, vertical: bool | None = True) -> list[tuple[int, ...]]:
    """Spatial dims to flip for each pass: none; with ``tta`` none/horizontal, and with
    ``vertical`` (null counts as true) also vertical/both."""
    if not tta:
        return [()]
    return [(), (-1,), (-2,), (-2, -1)] if vertical is not False else [(), (-1,)]


def symmetries(
    tta: bool, vertical: bool | None = True, rotate90: bool | None = False
) -> list[tuple[int, tuple[int, ...]]]:
    """(quarter turns, flipped dims) of each pass: ``flips`` without quarter turns; with
    ``rotate90`` the eight symmetries of the square (each turn, with and without a horizontal flip)."""
    if tta and rotate90:
        return [(k, dims) for k in range(4) for dims in ((), (-1,))]
    return [(0, dims) for dims in flips(tta, vertical)]


def predict_probabilities(
    net: Callable[[Tensor], Tensor],
    images: Tensor,
    num_classes: int,
    settings: InferenceSettings,
    window: int,
    multiple: int,
) -> Tensor:
    """Softmax probabilities (B, num_classes, H, W) of ``images`` (B, C, H, W) as ``settings`` say.

    In ``resize`` mode the images are expected at a size the network takes (the data pipeline
    resized them); in ``sliding_window`` mode at any size (``window`` and ``multiple`` = 2**depth).
    """

    def once(x: Tensor) -> Tensor:
        if settings.mode == "resize":
            return net(x).float().softmax(dim=1)
        large = x.shape[-2] * x.shape[-1] > LARGE_MAP_PIXELS
        return sliding_window_probabilities(
            net,
            x,
            window,
            num_classes,
            settings.overlap,
            settings.batch_size,
            multiple,
            output_device="cpu" if large else x.device,
        )

    total = None
    passes = symmetries(settings.tta, settings.tta_vertical, settings.tta_rotate90)
    for turns, dims in passes:
        x = images.flip(dims).rot90(turns, dims=(-2, -1)) if dims or turns else images
        p = once(x)
        p = p.rot90(-turns, dims=(-2, -1)).flip(dims) if dims or turns else p
        total = p if total is None else total + p
    return total / len(passes)


def predict_logits(
    net: Callable[[Tensor], Tensor], images: Tensor, num_classes: int, settings: InferenceSettings, multiple: int
) -> Tensor:
    """Logits of whole images as ``settings`` say: one forward pass, or (sliding window,
    test-time flips) the log of the averaged probabilities, which the losses and the argmax
    treat like logits. A null ``settings.window``: the image's longer side."""
    if settings.mode == "resize" and not settings.tta:
        return net(images)
    probs = predict_probabilities(
        net, images, num_classes, settings, settings.window or max(images.shape[-2:]), multiple
    )
    # Very large maps are accumulated on the CPU; the losses and metrics expect the images' device.
    return probs.clamp_min(1e-8).log().to(images.device)


def probabilities_at(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Softmax of ``logits`` (B, K, h, w) resized (bilinear) to ``size``: a prediction made on a
    resized image, brought back to the image's own pixels."""
    return F.interpolate(logits.float().softmax(1), size=tuple(size), mode="bilinear", align_corners=False)

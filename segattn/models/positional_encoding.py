"""Fixed 2D sine-cosine positional encoding, computed for any height and width (and kept per size)."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from segattn.models.token_pooling import adaptive_pool2d


def sincos_2d(channels: int, height: int, width: int, *, device=None, dtype=None) -> Tensor:
    """Return a (channels, height, width) encoding: the first half encodes the row, the second
    half the column, each as interleaved-free blocks of sines then cosines (Vaswani et al.
    frequencies, base 10000).

    Computed from the requested size, so there is no table of fixed size to outgrow, and created
    directly on ``device`` so the module works on CPU and CUDA alike.
    """
    if channels % 4 != 0:
        raise ValueError(
            f"2D sine-cosine positional encoding needs channels divisible by 4 (a sine and a cosine "
            f"for rows and for columns); got channels={channels}"
        )
    quarter = channels // 4
    # Compute in float32 for accuracy, cast at the end (bf16 positions would collide).
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter))
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None] * freqs  # (H, q)
    cols = torch.arange(width, device=device, dtype=torch.float32)[:, None] * freqs  # (W, q)
    row_enc = torch.cat([rows.sin(), rows.cos()], dim=1)  # (H, 2q)
    col_enc = torch.cat([cols.sin(), cols.cos()], dim=1)  # (W, 2q)
    enc = torch.cat(
        [
            row_enc.t()[:, :, None].expand(2 * quarter, height, width),
            col_enc.t()[:, None, :].expand(2 * quarter, height, width),
        ],
        dim=0,
    )
    return enc.to(dtype=dtype or torch.get_default_dtype())


CACHE_MAX_ELEMENTS = 2**22  # 256×256 cells × 64 channels: level 0 of a 512 px image at base 32


def positions(channels: int, height: int, width: int, *, device, dtype, grid: tuple[int, int] | None = None) -> Tensor:
    """``sincos_2d(channels, height, width)`` on ``device`` in ``dtype``, average-pooled to ``grid``
    (rows, columns) when given: the positions of pooled cells are the mean of their members'.

    Kept from one call to the next for each size (the last 32 entries, each of at most
    ``CACHE_MAX_ELEMENTS`` values: at most 512 MiB in float32; a depth-4 U-Net uses 8 entries per
    input size, so four input sizes fit): the encoding is a constant of the size, and computing
    it anew took about 15 small kernels per attention module and step, which on a GPU cost more
    launch time than the arithmetic. Traced (export) and compiled graphs
    compute it in the graph instead, where sizes may be symbolic and constants get folded.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or channels * height * width > CACHE_MAX_ELEMENTS:
        return _positions(channels, height, width, device, dtype, grid)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" are one key
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_positions(channels, height, width, device, dtype, grid)


def _positions(channels: int, height: int, width: int, device, dtype, grid) -> Tensor:
    enc = sincos_2d(channels, height, width, device=device, dtype=torch.float32)
    # A traced graph pools always (its sizes are tensors; pooling to the map's own grid changes nothing).
    if grid is not None and (torch.jit.is_tracing() or tuple(grid) != (height, width)):
        enc = adaptive_pool2d(enc[None], grid, "avg")[0]
    return enc.to(dtype)


@functools.lru_cache(maxsize=32)
def _cached_positions(channels: int, height: int, width: int, device: torch.device, dtype, grid) -> Tensor:
    # An ordinary tensor even when first asked for under inference_mode or no_grad (it is only
    # ever added to activations, so it never needs a gradient of its own).
    with torch.inference_mode(False), torch.no_grad():
        return _positions(channels, height, width, device, dtype, grid)


def add_positional_encoding(x: Tensor) -> Tensor:
    """``x + sincos_2d(...)`` for a (B, C, H, W) feature map, on x's device and dtype."""
    _, c, h, w = x.shape
    return x + positions(c, h, w, device=x.device, dtype=x.dtype)

"""The key/value grid of cross-attention and the adaptive pooling to it, in eager mode and in
traced graphs (TorchScript, ONNX) alike.

The grid depends on the input's size, so an exported model must compute it from the input's
shape at run time. Under ``torch.jit.trace`` (which both exports use) sizes are 0-dim tensors:
the grid is then computed with tensor ops, and the pooling, whose output size is no longer a
constant, with index gathers (ONNX has no adaptive pooling). In eager mode the native adaptive
pooling kernels run; the two give the same result (tested), so an exported model reproduces the
PyTorch one at every input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Size = int | Tensor


def key_value_grid(height: Size, width: Size, max_tokens: int) -> tuple[Size, Size]:
    """The grid the keys and values are pooled to: (height, width) itself when it has at most
    ``max_tokens`` cells, else the largest grid of about the same aspect ratio that does.

    Only keys and values are pooled (spatial-reduction attention), so the queries, and with them
    the gate, keep the decoder feature's full resolution while the cost of one query stays bounded:
    attention cost grows linearly with pixels. Any integer grid is allowed (no power-of-two steps
    that would waste most of the budget, e.g. 17×17 instead of 32×32 at 528 px). Sizes given as
    tensors (a traced graph) give the grid as tensors, by the same formula.
    """
    if isinstance(height, Tensor) or isinstance(width, Tensor):
        return _tensor_grid(_tensor(height), _tensor(width), max_tokens)
    if height * width <= max_tokens:
        return height, width
    scale = math.sqrt(max_tokens / (height * width))
    gh = min(height, max(1, int(height * scale + 1e-6)))
    gw = min(width, max(1, max_tokens // gh))  # the columns take what the rows leave
    gh = min(height, max(1, max_tokens // gw))  # and the rows what the columns leave (thin maps)
    return gh, gw


def _tensor(size: Size) -> Tensor:
    return size if isinstance(size, Tensor) else torch.tensor(size)


def _tensor_grid(height: Tensor, width: Tensor, max_tokens: int) -> tuple[Tensor, Tensor]:
    # The same steps as the integer version, in float64 like Python's floats. Without the branch:
    # a grid within the budget has scale >= 1, and every step then returns the size itself.
    scale = torch.sqrt(max_tokens / (height.double() * width.double()))
    gh = torch.minimum(height, torch.clamp(torch.floor(height.double() * scale + 1e-6).long(), min=1))
    gw = torch.minimum(width, torch.clamp(max_tokens // gh, min=1))
    gh = torch.minimum(height, torch.clamp(max_tokens // gw, min=1))
    return gh, gw


def adaptive_pool2d(x: Tensor, grid: tuple[Size, Size], mode: str) -> Tensor:
    """``F.adaptive_max_pool2d`` (``mode="max"``) or ``F.adaptive_avg_pool2d`` (``"avg"``) of a
    (B, C, H, W) map to ``grid``; while tracing, the same pooling by gathers (``gather_pool2d``)."""
    if not torch.jit.is_tracing():
        return F.adaptive_max_pool2d(x, grid) if mode == "max" else F.adaptive_avg_pool2d(x, grid)
    return gather_pool2d(x, grid, mode)


def gather_pool2d(x: Tensor, grid: tuple[Size, Size], mode: str) -> Tensor:
    """Adaptive pooling with sizes that may be tensors, one axis after the other (a rectangle's
    max or mean is that of its rows' maxima or means). Bins as PyTorch's: cell i of n covers
    [floor(i·L/n), ceil((i+1)·L/n)) of an axis of length L."""
    if mode not in ("max", "avg"):
        raise ValueError(f"adaptive pooling mode must be 'max' or 'avg', got {mode!r}")
    return _pool_axis(_pool_axis(x, 2, grid[0], mode), 3, grid[1], mode)


def _pool_axis(x: Tensor, dim: int, cells: Size, mode: str) -> Tensor:
    length = x.shape[dim]
    i = torch.arange(cells, device=x.device)
    start = i * length // cells
    end = ((i + 1) * length + cells - 1) // cells
    offsets = torch.arange((length + cells - 1) // cells + 1, device=x.device)  # the widest bin
    index = start[:, None] + offsets  # (cells, widest)
    inside = index < end[:, None]
    index = torch.minimum(index, (end - 1)[:, None])  # past a bin's end: repeat its last row
    if dim == 2:
        members, axis, inside, count = x[:, :, index, :], 3, inside[:, :, None], (end - start)[:, None]
    else:
        members, axis, count = x[:, :, :, index], 4, end - start
    if mode == "max":
        return members.amax(dim=axis)
    return (members * inside).sum(dim=axis) / count

"""segattn.models.positional_encoding: the 2-D sine-cosine codes, kept per size and following the input's dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segattn.models import (
    MultiHeadSelfAttention2d,
    sincos_2d,
)
from segattn.models.positional_encoding import _cached_positions, positions


def test_positional_encoding_deterministic_and_distinct():
    a = sincos_2d(16, 5, 7)
    b = sincos_2d(16, 5, 7)
    assert a.shape == (16, 5, 7)
    assert torch.equal(a, b)
    vectors = a.flatten(1).t()  # (35 positions, 16)
    distances = torch.cdist(vectors, vectors)
    off_diagonal = distances[~torch.eye(35, dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3  # every position has its own code
    # Rows encode the row index only, columns the column index only.
    assert torch.equal(a[:8, :, 0], a[:8, :, 6])
    assert torch.equal(a[8:, 0, :], a[8:, 4, :])
    # Any size works, and it follows the requested dtype.
    assert sincos_2d(8, 3, 1000, dtype=torch.float64).dtype == torch.float64


def test_positional_encoding_is_kept_per_size_and_pooled_by_cell_means():
    first = positions(16, 6, 10, device="cpu", dtype=torch.float32)
    assert first is positions(16, 6, 10, device="cpu", dtype=torch.float32)  # computed once per size
    torch.testing.assert_close(first, sincos_2d(16, 6, 10))
    pooled = positions(16, 6, 10, device="cpu", dtype=torch.bfloat16, grid=(3, 4))
    assert pooled.shape == (16, 3, 4) and pooled.dtype == torch.bfloat16
    torch.testing.assert_close(pooled, F.adaptive_avg_pool2d(sincos_2d(16, 6, 10)[None], (3, 4))[0].bfloat16())
    # First asked for under inference_mode, it still serves training (no inference tensor).
    _cached_positions.cache_clear()
    with torch.inference_mode():
        kept = positions(8, 3, 3, device="cpu", dtype=torch.float64)
    x = torch.zeros(8, 3, 3, dtype=torch.float64, requires_grad=True)
    (x * kept).sum().backward()
    torch.testing.assert_close(x.grad, sincos_2d(8, 3, 3, dtype=torch.float64))


def test_positional_encoding_follows_input_device_and_dtype():
    block = MultiHeadSelfAttention2d(16, heads=4).to(torch.float64)
    out, _ = block(torch.randn(1, 16, 3, 5, dtype=torch.float64))
    assert out.dtype == torch.float64

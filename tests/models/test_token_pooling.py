"""segattn.models.token_pooling: the key/value grid within its budget and the traceable pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segattn.models.token_pooling import gather_pool2d, key_value_grid


def test_key_value_grid_is_bounded_and_uses_the_budget():
    assert key_value_grid(16, 16, 1024) == (16, 16)
    assert key_value_grid(512, 512, 1024) == (32, 32)
    assert key_value_grid(264, 264, 1024) == (32, 32)  # a power-of-two factor would give 17×17
    for h, w, budget in [(512, 256, 1024), (100, 60, 256), (64, 64, 256), (7, 300, 100), (1, 5, 2)]:
        gh, gw = key_value_grid(h, w, budget)
        assert 1 <= gh <= h and 1 <= gw <= w and gh * gw <= budget
        assert gh * gw >= 0.8 * min(budget, h * w) or min(h, w) < 8, (h, w, gh, gw)


@pytest.mark.parametrize(
    "size,grid", [((7, 5), (3, 2)), ((64, 48), (16, 16)), ((9, 9), (9, 9)), ((4, 6), (5, 8)), ((33, 17), (16, 1))]
)
@pytest.mark.parametrize("as_tensors", [False, True])
def test_gather_pooling_equals_adaptive_pooling(size, grid, as_tensors):
    x = torch.randn(2, 3, *size)
    cells = tuple(torch.tensor(g) for g in grid) if as_tensors else grid
    torch.testing.assert_close(gather_pool2d(x, cells, "max"), F.adaptive_max_pool2d(x, grid), rtol=0, atol=0)
    torch.testing.assert_close(gather_pool2d(x, cells, "avg"), F.adaptive_avg_pool2d(x, grid), rtol=1e-6, atol=1e-6)


def test_key_value_grid_from_tensor_sizes_equals_the_integer_grid():
    for h in (1, 3, 8, 16, 17, 24, 32, 64, 136, 250):
        for w in (1, 5, 16, 31, 64, 136, 400):
            for budget in (1, 64, 256, 1024):
                gh, gw = key_value_grid(torch.tensor(h), torch.tensor(w), budget)
                assert (int(gh), int(gw)) == key_value_grid(h, w, budget), (h, w, budget)

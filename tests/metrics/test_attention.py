"""segattn.metrics.attention: head entropy, query agreement and gate contrast on hand-made and real maps."""

from __future__ import annotations

import math

import pytest
import torch

from segattn.metrics.attention import AttentionStats, head_entropy, query_agreement
from segattn.models import AttentionMaps, UNetAttention


def test_entropy_is_one_for_uniform_and_zero_for_one_hot_heads():
    n = 16
    uniform = torch.full((1, 1, n, n), 1 / n)
    one_hot = torch.eye(n)[None, None]
    same_key = torch.zeros(1, 1, n, n)
    same_key[..., 3] = 1
    weights = torch.cat([uniform, one_hot, same_key], dim=1)  # 3 heads
    assert head_entropy(weights)[0].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-4)
    # Only the collapsed head sends every query to the same key.
    assert query_agreement(weights)[0].tolist() == pytest.approx([1 / n, 1 / n, 1.0], abs=1e-4)


def test_gate_contrast_per_level():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2] = 1  # top half foreground
    gate0 = torch.full((1, 1, 4, 4), 0.2)
    gate0[..., :2, :] = 0.9
    gate1 = torch.full((1, 2, 2, 2), 0.5)  # flat, two channels, half resolution
    maps = AttentionMaps(gates=[gate0, gate1], cross_attention=[torch.full((1, 1, 4, 4), 0.25), None])
    stats = AttentionStats()
    stats.update(maps, mask)
    out = stats.compute()
    assert out["gate_contrast"] == pytest.approx([0.7, 0.0])
    assert out["gate_mean_foreground"] == pytest.approx([0.9, 0.5])
    assert out["mhca_entropy"][0] == pytest.approx(1.0)
    assert "mhsa_head_entropy" not in out


def test_levels_without_mhca_are_none_in_the_per_level_lists():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2] = 1
    gate = torch.full((1, 1, 2, 2), 0.3)
    gate[..., :1, :] = 0.8
    maps = AttentionMaps(gates=[gate], gate_levels=[2], cross_attention=[None])
    stats = AttentionStats()
    stats.update(maps, mask)
    out = stats.compute()
    assert out["gate_contrast"][:2] == [None, None] and out["gate_contrast"][2] == pytest.approx(0.5)
    assert len(out["gate_mean_foreground"]) == len(out["mhca_entropy"]) == 3
    # Lists span the model's levels, also past the deepest gated one (levels 0 and 1 of 4 here).
    model = UNetAttention(depth=4, base_channels=8, heads=2, head_dim=4, cross_attention_levels=[0, 1]).eval()
    with torch.no_grad():
        _, maps = model(torch.randn(1, 3, 32, 32), return_attention=True)
    stats = AttentionStats()
    stats.update(maps, torch.randint(0, 2, (1, 32, 32)))
    contrast = stats.compute()["gate_contrast"]
    assert len(contrast) == 4 and contrast[2:] == [None, None] and None not in contrast[:2]


def test_ignored_pixels_are_left_out_of_the_contrast():
    mask = torch.tensor([[[1, 0], [2, 2]]])
    gate = torch.tensor([[[[0.8, 0.4], [0.0, 1.0]]]])
    stats = AttentionStats(ignore_index=2)
    stats.update(AttentionMaps(gates=[gate], cross_attention=[None]), mask)
    assert stats.compute()["gate_contrast"] == pytest.approx([0.4])


def test_stats_of_a_real_model_are_in_range():
    torch.manual_seed(0)
    model = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    with torch.no_grad():
        _, maps = model(torch.randn(3, 3, 32, 32), return_attention=True)
    stats = AttentionStats()
    stats.update(maps, torch.randint(0, 2, (3, 32, 32)))
    out = stats.compute()
    assert len(out["mhsa_head_entropy"]) == 2 and all(0 < e <= 1 for e in out["mhsa_head_entropy"])
    assert len(out["gate_contrast"]) == 2 and all(-1 < c < 1 for c in out["gate_contrast"])
    assert all(0 < e <= 1 + 1e-6 for e in out["mhca_entropy"])
    assert not any(math.isnan(v) for v in out["mhsa_query_agreement"])


def _sink_maps(registers: int = 0):
    """A 6×6 bottleneck over a 12×12 mask whose central 2×2 cells are foreground; every query puts
    half its weight on the registers (if any) and the rest on one border cell (row 0, column 3)."""
    grid, n = (6, 6), 36
    weights = torch.zeros(1, 2, n, n + registers)
    weights[..., 3] = 1.0 if not registers else 0.5
    if registers:
        weights[..., n:] = 0.5 / registers
    mask = torch.zeros(1, 12, 12, dtype=torch.long)
    mask[0, 4:8, 4:8] = 1
    return AttentionMaps(self_attention=weights, self_attention_size=grid), mask


@pytest.mark.parametrize("registers", [0, 2])
def test_border_ratios_foreground_key_ratio_and_register_mass(registers):
    maps, mask = _sink_maps(registers)
    stats = AttentionStats()
    stats.update(maps, mask)
    out = stats.compute()
    # all the cells' weight on the border: 1 / (20 border cells of 36); among the 32 background cells, 1 / (20 of 32)
    assert out["mhsa_border_ratio"] == pytest.approx(36 / 20)
    assert out["mhsa_background_border_ratio"] == pytest.approx(32 / 20)
    assert out["mhsa_foreground_key_ratio"] == pytest.approx(0.0)
    assert out["mhsa_register_mass"] == pytest.approx(0.5 if registers else 0.0)


def test_uniform_attention_has_ratios_of_one():
    maps, mask = _sink_maps()
    maps.self_attention = torch.full_like(maps.self_attention, 1 / 36)
    stats = AttentionStats()
    stats.update(maps, mask)
    out = stats.compute()
    assert [out[k] for k in ("mhsa_border_ratio", "mhsa_background_border_ratio", "mhsa_foreground_key_ratio")] == (
        pytest.approx([1.0, 1.0, 1.0])
    )


def test_channel_contrast_sees_channels_that_cancel_in_the_mean():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2] = 1
    gate = torch.full((1, 2, 4, 4), 0.5)
    gate[0, 0, :2], gate[0, 1, :2] = 0.9, 0.1  # channel 0 opens on foreground, channel 1 closes
    stats = AttentionStats()
    stats.update(AttentionMaps(gates=[gate], cross_attention=[None]), mask)
    out = stats.compute()
    assert out["gate_contrast"] == pytest.approx([0.0]) and out["gate_channel_contrast"] == pytest.approx([0.4])

"""segattn.models.cross_attention: the MHCA gate's query, key and value projections."""

from __future__ import annotations

import torch

from segattn.models import (
    MultiHeadCrossAttentionGate,
)


def test_cross_attention_projections_are_signed_learned_linear_maps():
    """No ReLU before the dot product: queries and keys take both signs from the start."""
    gate = MultiHeadCrossAttentionGate(16, 32, head_dim=8)
    assert (
        isinstance(gate.query, torch.nn.Linear)
        and isinstance(gate.key, torch.nn.Linear)
        and isinstance(gate.value, torch.nn.Linear)
    )
    coarse = torch.relu(torch.randn(2, 32, 4, 4))  # decoder features are non-negative
    q = gate.query(gate.coarse_norm(coarse.flatten(2).transpose(1, 2)))
    assert (q < 0).any() and (q > 0).any()
    _, _, weights = gate(torch.randn(2, 16, 8, 8), coarse, need_weights=True)
    assert weights.std() > 0  # not uniform at initialisation


def test_gate_without_batchnorm_starts_at_gate_init_and_learns_its_spread():
    """gate_batchnorm=False: a biased 1×1 conv straight into the sigmoid (Oktay et al.'s gate)."""
    torch.manual_seed(0)
    gate = MultiHeadCrossAttentionGate(16, 32, head_dim=8, gate_channels="one", gate_init=0.7, gate_batchnorm=False)
    assert gate.gate_norm is None and gate.gate_projection.bias is not None
    skip, coarse = torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)
    gate.eval()
    with torch.no_grad():
        gate.gate_projection.weight.zero_()  # no variation: every cell at the initial value
        gated, z, _ = gate(skip, coarse)
    assert z.shape == (2, 1, 8, 8)
    torch.testing.assert_close(z, torch.full_like(z, 0.7))
    torch.testing.assert_close(gated, 0.7 * skip)
    # The same in training mode (no batch statistics to depend on), with a single image.
    gate.train()
    z_one = gate(skip[:1], coarse[:1])[1]
    torch.testing.assert_close(z_one, torch.full_like(z_one, 0.7), atol=1e-6, rtol=0)
    # The conv's weights then spread the gate, and gradients reach them through the sigmoid.
    torch.nn.init.normal_(gate.gate_projection.weight, std=1.0)
    gated, z, _ = gate(skip, coarse)
    assert z.std() > 0.01
    gated.sum().backward()
    assert gate.gate_projection.weight.grad.abs().sum() > 0 and gate.gate_projection.bias.grad.abs().sum() > 0
    with_norm = MultiHeadCrossAttentionGate(16, 32, head_dim=8)
    assert isinstance(with_norm.gate_norm, torch.nn.BatchNorm2d) and with_norm.gate_projection.bias is None

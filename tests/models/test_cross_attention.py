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

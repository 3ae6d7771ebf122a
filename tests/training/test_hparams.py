"""segattn.training.hparams: the curated run settings shown in TensorBoard's HParams."""

from __future__ import annotations

import pytest


def test_curated_hparams_rejects_a_non_config():
    from segattn.training.hparams import curated_hparams

    assert curated_hparams({"model": {"self_attention": False, "heads": 4}, "seed": None}) == {
        "self_attention": "false",
        "heads": 4,
        "seed": "null",
    }
    assert curated_hparams({"model": {"cross_attention_levels": [1, 2]}}) == {"cross_attention_levels": "[1, 2]"}
    with pytest.raises(TypeError, match="resolved run config"):
        curated_hparams(["model"])

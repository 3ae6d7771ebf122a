"""segattn.training.hparams: the curated run settings shown in TensorBoard's HParams."""

from __future__ import annotations

import pytest


def test_curated_hparams_rejects_a_non_config():
    from segattn.training.hparams import curated_hparams

    plain = {"model": {"self_attention": False, "cross_attention": False, "heads": 4, "qk_norm": True}, "seed": None}
    assert curated_hparams(plain) == {"self_attention": "false", "cross_attention": "false", "seed": "null"}
    mhca = {"model": {"cross_attention": True, "cross_attention_levels": [1, 2], "heads": 4}, "module": {"lr": 0.003}}
    assert curated_hparams(mhca) == {"cross_attention": "true", "cross_attention_levels": "[1, 2]", "lr": 0.003}
    full = {"model": {"self_attention": True, "cross_attention": True, "heads": 4, "cross_attention_levels": None}}
    assert curated_hparams(full) == {
        "self_attention": "true",
        "cross_attention": "true",
        "heads": "4",
        "cross_attention_levels": "all",
    }
    folder = {"data": {"_target_": "segattn.data.FolderDataModule", "root": "/x/glas"}, "trainer": {"max_epochs": 80}}
    assert curated_hparams(folder) == {"data": "folder glas", "max_epochs": "80"}
    with pytest.raises(TypeError, match="resolved run config"):
        curated_hparams(["model"])

"""segattn.training.atomic_checkpoint_io: a checkpoint write that dies leaves the previous file whole."""

from __future__ import annotations

import pytest
import torch

from segattn.training.atomic_checkpoint_io import atomic_torch_save


def test_atomic_save_keeps_the_previous_checkpoint_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.ones(3)}, path)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # what a kill in the middle of a write leaves
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

"""Checkpoints of tiny models, written for tests that load or refuse them."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_checkpoint(tmp_path: Path, **net) -> Path:
    """A checkpoint of a tiny untrained model (``net`` overrides its settings), saved under ``tmp_path``."""
    from segattn.training.module import SegmentationModule

    net = {"in_channels": 3, "num_classes": 2, "depth": 2, "base_channels": 8, "heads": 2, **net}
    module = SegmentationModule(net=net, class_names=[f"c{i}" for i in range(net["num_classes"])])
    path = tmp_path / f"tiny_{net['num_classes']}.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path

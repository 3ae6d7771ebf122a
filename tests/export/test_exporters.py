"""segattn.export.exporters: ONNX and TorchScript files reproduce PyTorch's logits and carry their settings."""

from __future__ import annotations

import json

import pytest
import torch

from segattn.export import ExportedModel, export_model, is_exported_model, parity_error
from segattn.models import UNetAttention

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install -e '.[dev]')")


METADATA = {
    "segattn_export": 1,
    "class_names": ["background", "object"],
    "net": {},
    "inference": {},
    "data": {"_target_": "segattn.data.SyntheticDataModule"},
}


def random_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics away from (0, 1), so the parity test sees every layer's effect."""
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return net.eval()


def metadata_of(net: UNetAttention) -> dict:
    """What segattn-export records of the network (``ExportedModel`` reads these three)."""
    return {**METADATA, "net": {"in_channels": net.in_channels, "num_classes": net.num_classes, "depth": net.depth}}


MODELS = {
    "full": dict(depth=3, base_channels=8, heads=2, head_dim=8, max_tokens=16),
    "full-one-gate": dict(depth=3, base_channels=8, heads=2, head_dim=8, max_tokens=16, gate_channels="one"),
    "plain-grey": dict(
        in_channels=1, num_classes=3, depth=2, base_channels=8, self_attention=False, cross_attention=False
    ),
    "mhca-only-gate-without-batchnorm": dict(
        depth=2, base_channels=8, self_attention=False, head_dim=4, max_tokens=8, gate_batchnorm=False
    ),
}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_reproduces_pytorch_logits_at_other_sizes(tmp_path, fmt, name):
    torch.manual_seed(0)
    net = random_statistics(UNetAttention(**MODELS[name]))
    path = export_model(net, fmt, tmp_path / f"model.{fmt}", metadata_of(net))
    assert is_exported_model(path)
    exported = ExportedModel(path)
    # Traced at 8·2**depth; checked at other sizes, square and not, where the key/value grid is
    # pooled at some levels and not at others (max_tokens is small).
    sizes = [(32, 32), (24, 56), (64, 40)]
    assert parity_error(net, exported, sizes, batch=2) < 1e-4
    x = torch.randn(3, net.in_channels, 40, 24)
    with torch.no_grad():
        assert exported(x).shape == net(x).shape == (3, net.num_classes, 40, 24)


def test_export_leaves_no_partial_file_and_carries_its_settings(tmp_path):
    net = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    path = export_model(net, "onnx", tmp_path / "m.onnx", METADATA)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    session = onnxruntime.InferenceSession(str(path))
    assert json.loads(session.get_modelmeta().custom_metadata_map["segattn.json"]) == METADATA
    inputs = session.get_inputs()[0]
    assert (
        inputs.name == "image" and isinstance(inputs.shape[2], str) and isinstance(inputs.shape[3], str)
    )  # dynamic H, W

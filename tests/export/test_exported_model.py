"""segattn.export.exported_model: an exported file without segattn's settings is refused."""

from __future__ import annotations

import pytest
import torch

from segattn.export import ExportedModel, is_exported_model
from segattn.models import UNetAttention

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install -e '.[dev]')")


def test_a_file_without_segattn_settings_is_refused_by_name(tmp_path):
    from segattn.errors import CheckpointError

    net = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    with pytest.raises(CheckpointError, match="foreign.onnx.*no 'segattn.json' settings"):
        ExportedModel(path)
    assert not is_exported_model(tmp_path / "missing.ckpt")

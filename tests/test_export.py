"""Export: the traced size-dependent parts, ONNX and TorchScript parity, and the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from segattn.export import ExportedModel, export_model, is_exported_model, parity_error
from segattn.models import UNetAttention
from segattn.models.token_pooling import gather_pool2d, key_value_grid
from tests.test_cli import run

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install -e '.[dev]')")

METADATA = {
    "segattn_export": 1,
    "class_names": ["background", "object"],
    "net": {},
    "inference": {},
    "data": {"_target_": "segattn.data.SyntheticDataModule"},
}


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


def random_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """BatchNorm statistics away from (0, 1), so the parity test sees every layer's effect."""
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return net.eval()


MODELS = {
    "full": dict(depth=3, base_channels=8, heads=2, head_dim=8, max_tokens=16),
    "full-qknorm-one-gate": dict(
        depth=3, base_channels=8, heads=2, head_dim=8, max_tokens=16, qk_norm=True, gate_channels="one"
    ),
    "plain-grey": dict(
        in_channels=1, num_classes=3, depth=2, base_channels=8, self_attention=False, cross_attention=False
    ),
    "mhca-only": dict(depth=2, base_channels=8, self_attention=False, head_dim=4, max_tokens=8),
}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_model_reproduces_pytorch_logits_at_other_sizes(tmp_path, fmt, name):
    torch.manual_seed(0)
    net = random_statistics(UNetAttention(**MODELS[name]))
    path = export_model(net, fmt, tmp_path / f"model.{fmt}", METADATA)
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


def test_a_file_without_segattn_settings_is_refused_by_name(tmp_path):
    from segattn.errors import CheckpointError

    net = UNetAttention(depth=2, base_channels=8, heads=2).eval()
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    with pytest.raises(CheckpointError, match="foreign.onnx.*no 'segattn.json' settings"):
        ExportedModel(path)
    assert not is_exported_model(tmp_path / "missing.ckpt")


@pytest.mark.slow
def test_export_command_and_predict_with_the_exported_models(smoke_run, tmp_path):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(images / "a.png")
    masks = {}
    for fmt, model in (("onnx", tmp_path / "m.onnx"), ("torchscript", tmp_path / "m.pt")):
        run(
            "segattn-export",
            f"ckpt_path={ckpt}",
            f"format={fmt}",
            f"output={model}",
            f"hydra.run.dir={tmp_path / ('export-' + fmt)}",
        )
        assert model.is_file()
        out = tmp_path / f"pred-{fmt}"
        run("segattn-predict", f"ckpt_path={model}", f"input_dir={images}", f"output_dir={out}", "inference.tta=true")
        masks[fmt] = np.array(Image.open(out / "a_mask.png"))
    run(
        "segattn-predict",
        f"ckpt_path={ckpt}",
        f"input_dir={images}",
        f"output_dir={tmp_path / 'pred-ckpt'}",
        "inference.tta=true",
    )
    reference = np.array(Image.open(tmp_path / "pred-ckpt" / "a_mask.png"))
    assert reference.shape == (37, 53)
    assert (masks["onnx"] == reference).all() and (masks["torchscript"] == reference).all()

    before = (tmp_path / "m.onnx").stat().st_mtime_ns
    again = run(
        "segattn-export",
        f"ckpt_path={ckpt}",
        f"output={tmp_path / 'm.onnx'}",
        f"hydra.run.dir={tmp_path / 'again'}",
        check=False,
    )
    assert again.returncode == 2 and "already exists; nothing was overwritten" in again.stderr + again.stdout
    assert (tmp_path / "m.onnx").stat().st_mtime_ns == before
    bad = run("segattn-export", f"ckpt_path={ckpt}", "format=tflite", f"hydra.run.dir={tmp_path / 'bad'}", check=False)
    assert bad.returncode == 2 and "format: got 'tflite'; allowed: onnx, torchscript" in bad.stderr + bad.stdout
    # An ONNX model under another suffix would be read as TorchScript; a .pt checkpoint is never replaced.
    misnamed = run(
        "segattn-export",
        f"ckpt_path={ckpt}",
        "format=onnx",
        f"output={tmp_path / 'm2.pt'}",
        f"hydra.run.dir={tmp_path / 'misnamed'}",
        check=False,
    )
    assert misnamed.returncode == 2 and "needs a name ending in .onnx" in misnamed.stderr + misnamed.stdout
    assert not (tmp_path / "m2.pt").exists()
    own = tmp_path / "own.pt"
    own.write_bytes(ckpt.read_bytes())
    itself = run(
        "segattn-export",
        f"ckpt_path={own}",
        "format=torchscript",
        "overwrite=true",
        f"hydra.run.dir={tmp_path / 'itself'}",
        check=False,
    )
    assert itself.returncode == 2 and "is the checkpoint itself" in itself.stderr + itself.stdout
    assert own.read_bytes() == ckpt.read_bytes()
    assert sorted(p.name for p in tmp_path.glob("*checking*")) == []


def test_an_export_that_fails_its_check_takes_no_name(smoke_run, tmp_path, monkeypatch):
    import segattn.export as export_package
    from segattn.cli.export import export
    from segattn.errors import ExportMismatchError

    earlier = tmp_path / "m.pt"
    earlier.write_bytes(b"an earlier export")
    monkeypatch.setattr(export_package, "parity_error", lambda *args: 1.0)
    cfg = OmegaConf.create(
        {
            "ckpt_path": str(smoke_run / "checkpoints" / "best.ckpt"),
            "format": "torchscript",
            "output": str(earlier),
            "overwrite": True,
            "check_sizes": [[32, 32]],
            "tolerance": 1e-4,
            "opset": 17,
        }
    )
    with pytest.raises(ExportMismatchError, match=r"differ from PyTorch's by up to 1 .*nothing was written"):
        export(cfg)
    assert earlier.read_bytes() == b"an earlier export" and [p.name for p in tmp_path.iterdir()] == ["m.pt"]

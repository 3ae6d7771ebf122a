"""segattn.cli.export (segattn-export): exports, predictions with them, and the files it will not replace."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from tests.helpers.commands import run

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime (pip install -e '.[dev]')")


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

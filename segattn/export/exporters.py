"""Writing a trained network as ONNX or TorchScript.

Both go through ``torch.jit.trace``, under which the network computes every size-dependent
quantity (positional encodings, the cross-attention key/value grid and its pooling) from the
input's shape at run time (``segattn.models.token_pooling``), so one file serves every input size
that is a multiple of 2**depth. The exporter is PyTorch's TorchScript-based ONNX exporter: its
``torch.export``-based successor freezes the adaptive pooling's output size to the example's.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
#: Name of the JSON settings inside an exported file (ONNX metadata property, TorchScript extra file).
METADATA_KEY = "segattn.json"
METADATA_VERSION = 1
OPSET = 17


def export_metadata(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What an exported file must carry besides the graph: classes, network settings, the data
    settings (image channels, normalisation, size or patch size, scale) and the inference settings
    of the training run."""
    hparams = checkpoint["hyper_parameters"]
    return {
        "segattn_export": METADATA_VERSION,
        "class_names": list(hparams["class_names"]),
        "net": dict(hparams["net"]),
        "inference": dict(hparams.get("inference") or {}),
        "data": (hparams.get("config") or {}).get("data"),
    }


def export_model(net: nn.Module, fmt: str, output: str | Path, metadata: dict[str, Any], opset: int = OPSET) -> Path:
    """Write ``net`` (a ``UNetAttention``) to ``output`` as ``fmt`` with ``metadata`` inside.

    The file is written beside ``output`` first and renamed into place, so an interrupted export
    never leaves a half-written model under the requested name.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    output = Path(output)
    net = net.eval().cpu().float()
    size = 8 * 2**net.depth  # any multiple of 2**depth traces the same graph
    example = torch.randn(1, net.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    partial = output.with_name(output.name + ".partial")
    text = json.dumps(metadata)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about every size it records as a tensor, and both APIs are deprecated.
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                traced = torch.jit.trace(net, example, check_trace=False)
                torch.jit.save(traced, str(partial), _extra_files={METADATA_KEY: text})
            else:
                _export_onnx(net, example, partial, text, opset)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path, metadata: str, opset: int) -> None:
    import onnx  # only this command needs it

    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        net,
        (example,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": axes, "logits": axes},
    )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata})
    onnx.save(model, str(path))


def parity_error(net: nn.Module, exported: Any, sizes: list[tuple[int, int]], batch: int = 2) -> float:
    """Largest |logit difference| between ``net`` (PyTorch) and an ``ExportedModel`` over random
    images of each ``(height, width)`` in ``sizes``."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    net = net.eval().cpu().float()
    for height, width in sizes:
        x = torch.randn(batch, net.in_channels, height, width, generator=generator)
        with torch.no_grad():
            worst = max(worst, (exported(x) - net(x)).abs().max().item())
    return worst

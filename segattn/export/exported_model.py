"""Running an exported model (ONNX through onnxruntime, or TorchScript) the way
``segattn-predict`` runs a checkpoint."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from segattn.checkpoint import check_targets, verify_archive
from segattn.errors import CheckpointError
from segattn.export.exporters import METADATA_KEY, METADATA_VERSION
from segattn.inference import InferenceSettings, predict_logits
from segattn.models.settings import network_depth


def is_exported_model(path: str | Path) -> bool:
    """An ONNX file (by its suffix), or a TorchScript archive carrying segattn's settings."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith(f"/extra/{METADATA_KEY}") for name in archive.namelist())


class ExportedModel:
    """An exported network with the settings saved beside it: callable on (B, C, H, W) images
    like the network, ``predict_logits`` like ``SegmentationModule``'s (resize or sliding window,
    flips), and ``net.in_channels / depth / num_classes``, ``inference`` and
    ``data_config`` for setting up the data pipeline of the training run."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"exported model not found: {self.path}")
        self.device = torch.device(device)
        if self.path.suffix.lower() == ".onnx":
            text = self._open_onnx()
        else:
            with self.path.open("rb") as f:
                verify_archive(self.path, f.read(4))  # a TorchScript file is a zip: check its CRCs
            extra = {METADATA_KEY: ""}
            with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
                warnings.simplefilter("ignore", FutureWarning)
                # Traced on the CPU, the graph holds the CPU as the device of the tensors it makes
                # (positional encodings, pooling indices): it runs there.
                self._module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra)
            self._run = self._run_torchscript
            text = extra[METADATA_KEY]
        metadata = self._parse(text)
        net = metadata["net"]
        self.class_names = list(metadata["class_names"])
        self.net = SimpleNamespace(
            in_channels=net["in_channels"], depth=network_depth({"depth": 4, **net}), num_classes=net["num_classes"]
        )
        self.inference = InferenceSettings(**metadata["inference"])
        self.data_config = metadata["data"]

    def _open_onnx(self) -> str:
        try:
            import onnxruntime
        except ImportError:
            raise CheckpointError(
                f"{self.path}: running an ONNX model needs onnxruntime: pip install onnxruntime "
                "(or the project's extra: pip install -e '.[export]')"
            ) from None
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = onnxruntime.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise CheckpointError(f"{self.path}: not a readable ONNX model: {str(err).splitlines()[0]}") from None
        self._run = self._run_onnx
        return self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "")

    def _parse(self, text: str) -> dict[str, Any]:
        if not text:
            raise CheckpointError(
                f"{self.path}: carries no '{METADATA_KEY}' settings: it was not written by segattn-export"
            )
        try:
            metadata = json.loads(text)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{self.path}: its '{METADATA_KEY}' settings are not valid JSON: {err}") from None
        if metadata.get("segattn_export") != METADATA_VERSION or not isinstance(metadata.get("data"), dict):
            raise CheckpointError(
                f"{self.path}: its settings are of export version {metadata.get('segattn_export')!r} or lack the data "
                f"settings; this segattn reads version {METADATA_VERSION}: export the checkpoint again"
            )
        check_targets(metadata["data"], str(self.path), "data")
        return metadata

    def _run_onnx(self, images: Tensor) -> Tensor:
        (logits,) = self._session.run(None, {"image": images.detach().float().cpu().numpy()})
        # onnxruntime may hand back a read-only buffer, which torch.from_numpy warns about
        return torch.from_numpy(np.require(logits, requirements="W")).to(images.device)

    def _run_torchscript(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self._module(images.cpu().float()).to(images.device)

    def __call__(self, images: Tensor) -> Tensor:
        return self._run(images)

    def predict_logits(self, images: Tensor) -> Tensor:
        return predict_logits(self, images, self.net.num_classes, self.inference, 2**self.net.depth)

"""Models for other runtimes: ONNX and TorchScript files with dynamic height and width, which
carry the settings ``segattn-predict`` needs to run them without the training checkpoint."""

from segattn.export.exported_model import ExportedModel, is_exported_model
from segattn.export.exporters import FORMATS, export_metadata, export_model, parity_error

__all__ = ["FORMATS", "ExportedModel", "export_metadata", "export_model", "is_exported_model", "parity_error"]

"""The TensorBoard logger as segattn's runs use it: the main curves open first.

TensorBoard's Time Series dashboard sorts tag groups by name and unfolds the first ones.
Lightning adds an ``epoch`` scalar to every logged step, which forms a group of its own that
sorts before ``train`` and ``val``; here it is left out (the x axis already counts steps, and
the console log names epochs). The learning rate is logged under ``train/lr/`` (the module names
its schedule so), so the groups read train, val, then ``val_attention`` and ``val_images``. A
custom-scalars layout draws the curves that belong together in one chart each: the MHSA head
entropies, the gate contrast per level, the sink ratios.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

LAYOUT = {
    "segattn": {
        "loss": ["Multiline", [r"^train/loss$", r"^val/loss$"]],
        "validation Dice and IoU": ["Multiline", [r"^val/dice$", r"^val/iou$", r"^val/best_dice$", r"^val/best_iou$"]],
        "MHSA head entropy / log N": ["Multiline", [r"^val_attention/mhsa_entropy_head\d+$"]],
        "MHSA border and foreground-key ratios": ["Multiline", [r"^val_attention/mhsa_.*_ratio$"]],
        "MHCA gate contrast per level": ["Multiline", [r"^val_attention/gate_contrast_level\d+$"]],
    }
}


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger without the automatic ``epoch`` scalar, with segattn's
    custom-scalars layout written once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._layout_written = False

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "epoch"}
        if not self._layout_written:
            self.experiment.add_custom_scalars(LAYOUT)
            self._layout_written = True
        if metrics:
            super().log_metrics(metrics, step)

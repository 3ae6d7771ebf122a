"""Inference on whole images: resize to the model's size, or slide a window at native scale."""

from segattn.inference.predictor import (
    MODES,
    InferenceSettings,
    predict_logits,
    predict_probabilities,
    probabilities_at,
)
from segattn.inference.sliding_window import gaussian_importance, sliding_window_probabilities, window_starts

__all__ = [
    "MODES",
    "InferenceSettings",
    "gaussian_importance",
    "predict_logits",
    "predict_probabilities",
    "probabilities_at",
    "sliding_window_probabilities",
    "window_starts",
]

"""Matplotlib figures for TensorBoard: predictions with errors, MHSA heads, MHCA gates.

Rendered with the Agg backend (no display needed), only on the logging epochs, a few images at a
time; every function returns an open ``Figure`` that the caller logs and closes.
"""

import matplotlib

matplotlib.use("Agg")

from segattn.figures.display import denormalize, normalization_of  # noqa: E402
from segattn.figures.gates import gate_figure  # noqa: E402
from segattn.figures.prediction import image_dice, prediction_figure  # noqa: E402
from segattn.figures.sampling import choose_queries, varied_sample, worst_k  # noqa: E402
from segattn.figures.self_attention import self_attention_figure  # noqa: E402

__all__ = [
    "choose_queries",
    "denormalize",
    "gate_figure",
    "image_dice",
    "normalization_of",
    "prediction_figure",
    "self_attention_figure",
    "varied_sample",
    "worst_k",
]

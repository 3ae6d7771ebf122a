"""What is measured: Dice and IoU of label maps, and statistics of the model's attention maps."""

from segattn.metrics.attention import AttentionStats
from segattn.metrics.scores import SegmentationScores, flatten_scores

__all__ = ["AttentionStats", "SegmentationScores", "flatten_scores"]

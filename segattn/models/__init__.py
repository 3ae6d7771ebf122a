"""Models of segattn: the U-Net Transformer and its parts."""

from segattn.models.cross_attention import MultiHeadCrossAttentionGate
from segattn.models.positional_encoding import sincos_2d
from segattn.models.self_attention import MultiHeadSelfAttention2d
from segattn.models.unet_attention import AttentionMaps, UNetAttention

__all__ = [
    "AttentionMaps",
    "MultiHeadCrossAttentionGate",
    "MultiHeadSelfAttention2d",
    "UNetAttention",
    "sincos_2d",
]

"""segattn: U-Net with multi-head self-attention and cross-attention skips (U-Net Transformer)."""

__version__ = "0.1.0"

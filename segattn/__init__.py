"""segattn: U-Net with multi-head self-attention and cross-attention skips (U-Net Transformer)."""

import os

# albumentations asks PyPI for a newer version at every import (a network call online, a warning
# offline). segattn is imported before albumentations everywhere, so switch it off here; setting
# NO_ALBUMENTATIONS_UPDATE=0 in the environment turns the check back on.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

"""One colour meaning in every figure and overlay (Okabe & Ito's colour-blind-safe palette).

- foreground (class 1): orange; background: sky blue (where it is drawn at all, e.g. MHSA
  query markers and gate histograms; overlays leave it grey);
- errors: true positive bluish green, false positive reddish purple, false negative yellow;
- further classes (2, 3, ...): blue, vermillion, then the three again (never an error colour).
"""

from __future__ import annotations

import numpy as np

OKABE_ITO = {
    "orange": (230, 159, 0),
    "sky_blue": (86, 180, 233),
    "bluish_green": (0, 158, 115),
    "yellow": (240, 228, 66),
    "blue": (0, 114, 178),
    "vermillion": (213, 94, 0),
    "reddish_purple": (204, 121, 167),
    "black": (0, 0, 0),
}


def hex_of(name: str) -> str:
    return "#{:02X}{:02X}{:02X}".format(*OKABE_ITO[name])


FOREGROUND = hex_of("orange")
BACKGROUND = hex_of("sky_blue")
#: Class 0 (background) is not coloured; classes 1.. take these in turn (class 1 = the foreground colour).
CLASS_COLOURS = np.array([OKABE_ITO[k] for k in ("orange", "blue", "vermillion")]) / 255.0
#: Error map: true positive, false positive, false negative (true negatives stay the dimmed photo).
ERROR_COLOURS = {
    "true positive": np.array(OKABE_ITO["bluish_green"]) / 255.0,
    "false positive": np.array(OKABE_ITO["reddish_purple"]) / 255.0,
    "false negative": np.array(OKABE_ITO["yellow"]) / 255.0,
}
#: Pixels without a label (``ignore_index``).
IGNORED_GREY = 0.85


def class_colour(class_id: int) -> np.ndarray:
    """RGB in [0, 1] of a foreground class id (1, 2, ...)."""
    if class_id < 1:
        raise ValueError(f"class {class_id} is background or invalid: only classes >= 1 are coloured")
    return CLASS_COLOURS[(class_id - 1) % len(CLASS_COLOURS)]

"""Which binary convention a folder's masks follow, read from the masks themselves.

Binary masks come saved as 0/255 (what image editors and most public datasets write) or as 0/1
(what array code writes). With ``data.mask_mapping`` left null, the folder dataset reads every
mask once and takes the mapping that fits the values it finds. Any other set of values (several
classes, instance labels, an ignore value) has no safe reading: the error lists the values and
suggests an explicit mapping instead of guessing. Masks stored as JPEG (Kvasir-SEG, for one) hold
every value from 0 to 255 near edges, since the compression is lossy: they can only be binary, and
read as foreground from 128 up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from segattn.data.errors import DatasetContentError
from segattn.data.io import is_jpeg, read_mask

log = logging.getLogger(__name__)

#: The mappings tried, in order: masks holding only 0 (no foreground anywhere) read as 0/255.
BINARY_MAPPINGS = ({0: 0, 255: 1}, {0: 0, 1: 1})
#: JPEG masks: the lossy values 0..127 are background, 128..255 foreground.
THRESHOLD_MAPPING = {value: int(value >= 128) for value in range(256)}
SUGGESTED_MAX = 16  # above this many values a one-class-per-value mapping is rarely meant


def _values(path: Path) -> np.ndarray | None:
    """The values of one mask, or None when it cannot be read (the data check names it later)."""
    try:
        return np.unique(read_mask(path))
    except (DatasetContentError, OSError, ValueError):
        return None


def mask_values(paths: Sequence[Path], workers: int | None = None) -> dict[int, Path]:
    """Every value found in the masks → the first mask (in the given order) that holds it."""
    first: dict[int, Path] = {}
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PNG decoding releases the GIL
        for path, values in zip(paths, pool.map(_values, paths)):
            for value in values if values is not None else ():
                first.setdefault(int(value), path)
    return first


def binary_mapping(values: dict[int, Path], where: Path) -> dict[int, int]:
    """The binary mapping that covers ``values`` (from ``mask_values``); else a DatasetContentError
    that lists them and suggests ``data.mask_mapping``."""
    for mapping in BINARY_MAPPINGS:
        if set(values) <= set(mapping):
            return mapping
    found = sorted(values)
    odd = next((v for v in found if v not in (0, 1, 255)), found[-1])  # a value neither convention has
    if len(found) <= SUGGESTED_MAX:
        pairs = ",".join(f"{v}:{i}" for i, v in enumerate(found))
        hint = f"for one class per value, in order: 'data.mask_mapping={{{pairs}}}'"
    else:
        hint = (
            f"{len(found)} different values look like instance labels: map each to its class (e.g. 0 to 0 and every "
            "other value to 1) in data.mask_mapping"
        )
    shown = ", ".join(str(v) for v in found[:SUGGESTED_MAX]) + (", ..." if len(found) > SUGGESTED_MAX else "")
    raise DatasetContentError(
        f"data.mask_mapping is null, which reads binary masks (saved as 0/255 or 0/1, or all as JPEG), but the masks under {where} hold "
        f"the values {shown} (e.g. {odd} in {values[odd]}). Say which class each value is: {hint}; a value may map to "
        "data.ignore_index to leave its pixels out"
    )


def infer_binary_mapping(mask_paths: Sequence[Path], where: Path) -> dict[int, int]:
    """Read the masks and return the binary mapping they follow (see ``binary_mapping``);
    ``THRESHOLD_MAPPING`` when every mask is a JPEG."""
    if mask_paths and all(is_jpeg(path) for path in mask_paths):
        log.info("data.mask_mapping=null: the %d masks under %s are JPEG (lossy), read as binary: values from 128 up are class 1", len(mask_paths), where)
        return THRESHOLD_MAPPING
    mapping = binary_mapping(mask_values(mask_paths), where)
    log.info("data.mask_mapping=null: the %d masks under %s hold %s, read as %s", len(mask_paths), where, "/".join(map(str, mapping)), mapping)
    return mapping

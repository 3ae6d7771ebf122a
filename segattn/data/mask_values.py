"""Which binary convention a folder's masks follow, read from the masks themselves.

Binary masks come saved as 0/255 (what image editors and most public datasets write) or as 0/1
(what array code writes). With ``data.mask_mapping`` left null, the folder dataset reads every
mask once and takes the mapping that fits the values it finds. Any other set of values (several
classes, instance labels, an ignore value) has no safe reading: the error lists the values and
suggests an explicit mapping instead of guessing. Masks stored as JPEG (Kvasir-SEG, for one) hold
many values near edges, since the compression is lossy: they can only be binary, and read as
foreground from 128 up (saved as 0/255), or from 1 up when no value reaches 128 (saved as 0/1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from segattn.data.io import is_jpeg, read_mask
from segattn.errors import DatasetContentError

log = logging.getLogger(__name__)

#: The mappings tried, in order: masks holding only 0 (no foreground anywhere) read as 0/255.
BINARY_MAPPINGS = ({0: 0, 255: 1}, {0: 0, 1: 1})
SUGGESTED_MAX = 16  # above this many values a one-class-per-value mapping is rarely meant


def threshold_mapping(largest: int) -> dict[int, int]:
    """JPEG masks, whose largest value is ``largest``: class 1 from 128 up, or from 1 up when no
    value reaches 128 (a 0/1 mask, smeared by the compression)."""
    cut = 128 if largest >= 128 else 1
    return {value: int(value >= cut) for value in range(256)}


def _values(path: Path) -> tuple[np.ndarray | None, bool]:
    """(the values of one mask, or None when it cannot be read: the data check names it later;
    whether it is a JPEG)."""
    try:
        return np.unique(read_mask(path)), is_jpeg(path)
    except (DatasetContentError, OSError, ValueError):
        return None, False


def mask_values(paths: Sequence[Path], workers: int | None = None) -> tuple[dict[int, Path], bool]:
    """(every value found in the masks → the first mask, in the given order, that holds it;
    whether every readable mask is a JPEG, with at least one readable)."""
    first: dict[int, Path] = {}
    readable = jpeg = 0
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PNG decoding releases the GIL
        for path, (values, is_jpeg_file) in zip(paths, pool.map(_values, paths)):
            if values is None:
                continue
            readable, jpeg = readable + 1, jpeg + is_jpeg_file
            for value in values:
                first.setdefault(int(value), path)
    return first, readable > 0 and jpeg == readable


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
            f"{len(found)} different values look like instance labels (or masks resized with smoothing, which must "
            "be resized nearest): map each value to its class (e.g. 0 to 0 and every other value to 1) in "
            "data.mask_mapping"
        )
    shown = ", ".join(str(v) for v in found[:SUGGESTED_MAX]) + (", ..." if len(found) > SUGGESTED_MAX else "")
    raise DatasetContentError(
        f"data.mask_mapping is null, which reads binary masks (saved as 0/255 or 0/1, or all as JPEG), but the masks "
        f"under {where} hold the values {shown} (e.g. {odd} in {values[odd]}). Say which class each value is: {hint}; "
        "a value may map to data.ignore_index to leave its pixels out"
    )


def infer_binary_mapping(mask_paths: Sequence[Path], where: Path) -> dict[int, int]:
    """Read the masks and return the binary mapping they follow (see ``binary_mapping``), or
    ``threshold_mapping`` when every mask is a JPEG."""
    values, all_jpeg = mask_values(mask_paths)
    if all_jpeg:
        mapping = threshold_mapping(max(values))
        cut = min(v for v, c in mapping.items() if c == 1)
        log.info(
            "data.mask_mapping=null: the %d masks under %s are JPEG (lossy), read as binary: "
            "values from %d up are class 1",
            len(mask_paths),
            where,
            cut,
        )
        return mapping
    mapping = binary_mapping(values, where)
    log.info(
        "data.mask_mapping=null: the %d masks under %s hold %s, read as %s",
        len(mask_paths),
        where,
        "/".join(map(str, mapping)),
        mapping,
    )
    return mapping

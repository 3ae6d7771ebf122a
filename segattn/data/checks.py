"""Reading every file of the splits before training starts, in parallel.

Without this, a truncated JPEG, a text file named ``.jpg``, an image and mask of different sizes
or a mask value outside the mapping stops a run only when its batch comes up (mid-epoch, or at the
first validation). Here each sample is loaded once exactly as training will load it (decode, size
agreement, mask values mapped), so every bad file is reported at once, naming it, before any
training step. ``check_data=false`` skips it for datasets too large to read twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from segattn.errors import DatasetContentError

log = logging.getLogger(__name__)
SHOWN = 5


def _load(dataset, index: int) -> tuple[str | None, np.ndarray | None]:
    """(problem or None, the class ids present in the mask)."""
    sample = dataset.samples[index]
    try:
        _, mask = sample.load(dataset.grey, dataset.table)
    except (DatasetContentError, OSError, ValueError) as err:
        return str(err), None
    return None, np.unique(mask)


def check_samples(datamodule, splits: Sequence[str], workers: int | None = None) -> dict[str, set[int]]:
    """Load every sample of ``splits``; raise ``DatasetContentError`` listing the unusable files.

    Returns the class ids present in each split's masks (the caller checks that validation has
    something to score).
    """
    started = time.monotonic()
    workers = workers or min(8, os.cpu_count() or 1)
    problems: list[str] = []
    present: dict[str, set[int]] = {}
    total = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:  # decoding releases the GIL
        for split in splits:
            dataset = datamodule.dataset(split)
            present[split] = set()
            count = len(dataset.samples)  # files, not items: a patch dataset has several items per file
            total += count
            for problem, classes in pool.map(lambda i, d=dataset: _load(d, i), range(count)):
                if problem:
                    problems.append(f"{split}: {problem}")
                else:
                    present[split].update(int(c) for c in classes)
    if problems:
        shown = "\n  - ".join(problems[:SHOWN])
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise DatasetContentError(
            f"{len(problems)} of the {total} samples cannot be used (checked before training):\n  - {shown}{more}\n"
            "Fix or remove these files (or set check_data=false to skip this check and fail when a bad file is read)"
        )
    log.info("Checked %d samples of %s in %.1f s", total, ", ".join(splits), time.monotonic() - started)
    return present


def scored_classes_problem(present: set[int], datamodule, include_background: bool, split: str = "val") -> str | None:
    """Validation masks holding none of the scored classes leave ``val/dice`` undefined: no best
    checkpoint could ever be chosen. Name the classes that would be scored."""
    scored = [
        c for c in range(datamodule.num_classes) if c != datamodule.ignore_index and (include_background or c != 0)
    ]
    if not scored or present & set(scored):
        return None
    names = [datamodule.class_names[c] for c in scored]
    return (
        f"the {split} split's masks hold none of the scored classes {names} (only {sorted(present)}): val/dice would "
        "be undefined and best.ckpt could not be chosen. Check that data.mask_mapping maps the masks' foreground "
        "values to these classes, or put images with foreground into the validation split"
    )

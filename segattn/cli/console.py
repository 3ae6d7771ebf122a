"""A quiet console, and all of it in the run directory's log file.

- albumentations' update check (a network call at import, a warning offline) is switched off in
  ``segattn/__init__.py`` before albumentations is imported;
- Lightning's advertising tip (litlogger) and its note about our model-summary callback are dropped;
- the ``LeafSpec`` FutureWarning that Lightning's pytree helper triggers in recent torch is hidden
  (it is Lightning's code, nothing a user can act on);
- Lightning's own log lines (which do not reach Hydra's file handler) and Python warnings are sent
  to the same file as ours, so ``<run dir>/train.log`` holds everything but the progress bars.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

#: Lightning messages that advertise a product or report its own plumbing, not the run.
NOISE_MARKERS = ("litlogger", "💡 Tip", "Skipping setting a default `ModelSummary`")
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning")
RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


class DropNoise(logging.Filter):
    """Drops the NOISE_MARKERS records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in NOISE_MARKERS)


def quiet_console() -> None:
    """Filters for the third-party noise listed above (idempotent)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    for name in LIGHTNING_LOGGERS + RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropNoise) for f in logger.filters):
            logger.addFilter(DropNoise())
        for handler in logger.handlers:
            if not any(isinstance(f, DropNoise) for f in handler.filters):
                handler.addFilter(DropNoise())


def log_file() -> Path | None:
    """The file Hydra's job logging writes (``<run dir>/<task>.log``), if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def mirror_to_log_file() -> Path | None:
    """Send Lightning's log records and Python warnings to Hydra's log file too."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return None
    logging.captureWarnings(True)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if logger.propagate and logger.handlers == []:
            continue  # reaches the root's handlers already
        for handler in files:
            if handler not in logger.handlers:
                handler.addFilter(DropNoise())
                logger.addHandler(handler)
    return Path(files[0].baseFilename)

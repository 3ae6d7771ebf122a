"""Lightning's model summary without its FLOPs column (all zeros: the module has no example input)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary

log = logging.getLogger(__name__)


class ModelSummaryWithoutFlops(ModelSummary):
    """Same table of parameters, minus the FLOPs column and the "Total Flops" line."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *columns
        )
        log.info("\n%s", "\n".join(line for line in table.splitlines() if not line.rstrip().endswith("Total Flops")))

"""Stopping on a NaN or infinite training loss, without reading the loss on the host every step."""

from __future__ import annotations

import torch
from torch import Tensor

from segattn.errors import NonFiniteLossError


def nonfinite_message(value: float, where: str) -> str:
    return (
        f"training loss is {value} at {where}; the run stopped and the last checkpoint was kept. "
        "Lower module.lr, check the data, or set module.nonfinite_loss=skip to skip such batches."
    )


class NonFiniteLossWatch:
    """Remembers, on the loss's device, the first step since the last ``check`` whose loss was NaN
    or infinite, and raises ``NonFiniteLossError`` naming that step when checked.

    Reading a GPU loss on the host (``if not torch.isfinite(loss)``) waits for everything the
    host has queued, every step: the device then idles while the host prepares the next batch.
    Here each step adds a few device operations and no copy; the one read happens in ``check``,
    which the module calls before every checkpoint write and validation, at the end of each epoch
    and of training, and every ``max_pending`` steps. The update of the bad step (and of the
    steps after it, up to the check) is applied, but the run stops before anything saves it.
    """

    def __init__(self, max_pending: int = 100) -> None:
        self.max_pending = max_pending
        self._error: str | None = None  # once found, every later check raises again
        self._reset()

    def _reset(self) -> None:
        self._first: Tensor | None = None  # index into _where of the first bad step, or -1
        self._value: Tensor | None = None  # that step's loss
        self._where: list[tuple] = []

    def record(self, loss: Tensor, *where) -> None:
        """Note one step's loss; ``where`` describes the step for the message (``describe_step``)."""
        index = len(self._where)
        self._where.append(where)
        loss = loss.detach()
        if self._first is None:
            self._first = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._value = torch.zeros((), dtype=torch.float32, device=loss.device)
        first_bad = (self._first < 0) & ~torch.isfinite(loss)
        self._first = torch.where(first_bad, index, self._first)  # a Python scalar: no copy to the device
        self._value = torch.where(first_bad, loss.float(), self._value)
        if len(self._where) >= self.max_pending:
            self.check()

    def check(self) -> None:
        """Raise ``NonFiniteLossError`` if a recorded loss was not finite (one host read), and again
        at every later check (a checkpoint written on the way out must not hold the bad update)."""
        if self._first is not None:
            first, value, where = int(self._first), float(self._value), self._where
            self._reset()
            if first >= 0 and self._error is None:
                self._error = nonfinite_message(value, describe_step(*where[first]))
        if self._error is not None:
            raise NonFiniteLossError(self._error)


def describe_step(epoch: int, global_step: int, batch_idx: int, names) -> str:
    return f"epoch {epoch}, global step {global_step}, batch {batch_idx} (images {list(names)[:4]})"

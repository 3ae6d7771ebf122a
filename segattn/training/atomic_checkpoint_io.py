"""Checkpoint writes that a kill cannot corrupt: temporary file, fsync, rename into place."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``<dir>/.<name>.tmp-<pid>``, fsync, then ``os.replace`` onto ``path``.

    The rename is atomic on POSIX file systems, so ``path`` holds either the previous complete
    checkpoint or the new complete one, never a partial write; a failed write removes its
    temporary file and leaves ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            # Serialised in memory first: torch's zip writer turns a full disk into a RuntimeError
            # without an errno, a plain write reports it as what it is (ENOSPC).
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            with open(tmp, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:  # name the checkpoint, not its temporary file (segattn.files.disk_error)
            raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O whose saves go through :func:`atomic_torch_save`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)

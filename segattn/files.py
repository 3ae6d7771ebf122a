"""Files written so that a full disk or a kill never leaves a partial one under the final name.

Every output (masks, overlays, metrics, exported models, checkpoints) is written to a temporary
name in its folder and renamed into place: the rename is atomic, so the name holds the complete
old file, the complete new one, or nothing. A failed write removes its temporary file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

#: Errors of the storage rather than of the program: the message says which folder and why.
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted (an immutable file or folder?)",
}


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary path)`` and rename the result onto ``path``."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide outputs from the user's group
            os.replace(tmp, path)
        except OSError as err:  # name the file the user asked for, not the temporary one
            raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """A uint8 array (H, W) or (H, W, 3) as a PNG file at ``path``."""
    image = Image.fromarray(np.ascontiguousarray(array))
    return write_atomically(path, lambda tmp: image.save(tmp, format="PNG"))


def write_text(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text))


#: Errors that only writing meets; a permission error may also come from reading.
WRITE_ONLY_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def disk_error(err: BaseException) -> OSError | None:
    """The storage error behind ``err`` (itself, or what it was raised from): a full or read-only
    disk anywhere, a permission error only where segattn was writing an output."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            if err.errno in WRITE_ONLY_ERRNOS or getattr(err, "filename", None) and is_output(err):
                return err
        err = err.__cause__
    return None


def is_output(err: OSError) -> bool:
    """Raised by ``write_atomically`` (or the checkpoint writer) for the file being written."""
    cause = err.__cause__
    return isinstance(cause, OSError) and cause.errno == err.errno


def is_disk_error(err: BaseException) -> bool:
    return disk_error(err) is not None


def disk_error_message(err: BaseException) -> str:
    """One line: the file and what the storage said, and what to do."""
    found = disk_error(err)
    where = found.filename or "an output file"
    return (
        f"cannot write {where}: {DISK_ERRNOS[found.errno]} ({os.strerror(found.errno)}). The files written before "
        "it are complete and kept; free space or choose a writable folder"
    )


def writable_folder_problem(folder: str | Path) -> str | None:
    """Why files cannot be created in ``folder`` (made if missing), or None: checked before a
    command loads its model, so a read-only or full output folder fails at once."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check."):
            pass
    except OSError as err:
        reason = DISK_ERRNOS.get(err.errno, os.strerror(err.errno) if err.errno else str(err))
        return f"cannot write into {folder}: {reason}"
    return None

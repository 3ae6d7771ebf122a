"""One process owns a run folder: an exclusive lock taken before anything is written there.

Two commands started into the same ``hydra.run.dir`` (or ``hydra.sweep.dir``) would interleave
their logs and overwrite each other's checkpoints. The first to lock ``<folder>/.segattn.lock``
(``flock``, exclusive) owns the folder for as long as its process lives: the operating system
releases the lock when the process ends, however it ends (a kill included), so a lock left by a
dead process never blocks. The file names its owner (process, host, command, start time) for
the message the second command gets. The processes of one DDP run share their rank-0 process's
lock: only rank 0 claims it. A folder that is the user's (predict's output) has the file
removed on release; a claim that then finds it gone locks the file at the path anew.
On platforms without ``fcntl`` (Windows) folders are not locked.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from segattn.errors import RunDirectoryError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".segattn.lock"
#: Open lock files of this process, by folder: kept open (and so locked) until the process ends.
_held: dict[Path, int] = {}


def read_lock(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written, or damaged
    return owner if isinstance(owner, dict) else {}


def owner_of(path: Path) -> str:
    owner = read_lock(path)
    if not owner:
        return "another segattn command"
    return (
        f"{owner.get('command', 'a segattn command')} (process {owner.get('pid')} on {owner.get('host')}, "
        f"started {owner.get('started')})"
    )


def claim(directory: Path, command: str, setting: str) -> None:
    """Lock ``directory`` for this process (until it ends), or raise ``RunDirectoryError`` naming
    the live process that holds it. ``setting`` names the folder as the user gave it
    (``hydra.run.dir=...``) for the message."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory.resolve()
    if key in _held or fcntl is None:
        return
    path = directory / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirectoryError(
                f"{setting}: a live run holds this folder: {owner_of(path)}; nothing was written. "
                "Choose another folder, or wait for that run to end"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed the file as it released it: lock the file now at the path
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    _held[key] = fd


def release(directory: Path, remove: bool = False) -> None:
    """Give up this process's lock of ``directory`` (the process's end does the same). ``remove``
    deletes the lock file first, for a folder that is the user's (predict's output) rather than a
    run folder."""
    fd = _held.pop(Path(directory).resolve(), None)
    if fd is None:
        return
    if remove:
        Path(directory, LOCK_NAME).unlink(missing_ok=True)
    os.close(fd)

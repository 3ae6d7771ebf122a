"""One process owns a run folder: a lock file created atomically before anything is written there.

Two commands started into the same ``hydra.run.dir`` (or ``hydra.sweep.dir``) would interleave
their logs and overwrite each other's checkpoints. The first to create ``.segattn.lock`` (with
``O_EXCL``, atomic on local and NFSv3+ file systems) owns the folder until it exits; the lock
names its process, host, command and start time, so the second is refused with who holds it.
A lock whose process is gone (killed, crashed) is stale and taken over. The processes of one DDP
run share their rank-0 process's lock: only rank 0 claims it.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from pathlib import Path

from segattn.errors import RunDirectoryError

LOCK_NAME = ".segattn.lock"
_held: set[Path] = set()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written, or damaged: judged by its age below


def holder_is_alive(owner: dict, path: Path) -> bool:
    """Whether the lock's process still runs. On another host this cannot be told: alive."""
    if not owner:  # unreadable: alive while fresh (its writer may be between create and write)
        try:
            return time.time() - path.stat().st_mtime < 10
        except OSError:
            return False
    if owner.get("host") != socket.gethostname():
        return True
    return process_alive(int(owner.get("pid", -1)))


def claim(directory: Path, command: str, setting: str) -> None:
    """Take the lock of ``directory`` for this process (released when it exits), or raise
    ``RunDirectoryError`` naming the live process that holds it. ``setting`` names the folder as
    the user gave it (``hydra.run.dir=...``) for the message."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    if path.resolve() in _held:
        return
    record = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = read_lock(path)
            if holder_is_alive(owner, path):
                who = (
                    f"{owner.get('command', 'a segattn command')} (process {owner.get('pid')} on {owner.get('host')}, "
                    f"started {owner.get('started')})"
                    if owner
                    else "another segattn command"
                )
                raise RunDirectoryError(
                    f"{setting}: a live run holds this folder: {who}; nothing was written. Choose another folder, "
                    f"or wait for that run to end (if it is not running any more, remove {path})"
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(record)
        _held.add(path.resolve())
        atexit.register(release, path)
        return
    raise RunDirectoryError(f"{setting}: could not take the folder's lock {path}; another process keeps taking it")


def release(path: Path) -> None:
    """Remove the lock if this process holds it."""
    path = Path(path)
    if path.resolve() not in _held:
        return
    owner = read_lock(path)
    if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
    _held.discard(path.resolve())

"""Checks of a run directory named with ``hydra.run.dir=``, made before Hydra starts.

Hydra creates the run directory and rewrites ``<dir>/.hydra/`` (config, overrides) before any
command code runs. So a directory that cannot be written, or that already holds another run, is
checked here, from the command line itself: otherwise Hydra would fail with its own traceback, or
would already have replaced the earlier run's ``.hydra/`` files when the command refuses the directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only

from segattn.cli.run_lock import LOCK_NAME, claim
from segattn.errors import RunDirectoryError

#: What marks a directory as holding a run (training, evaluation or prediction).
RUN_MARKERS = ("checkpoints", "tensorboard", "config.yaml", "metrics.json", "predictions", ".hydra")


def override_value(argv: Sequence[str], key: str) -> str | None:
    """The value of ``key=...`` (or ``+key=`` / ``++key=``) on a Hydra command line, last one wins."""
    value = None
    for arg in argv:
        name, sep, rest = arg.lstrip("+").partition("=")
        if sep and name == key:
            value = rest.strip("'\"")
    return value


def writable_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot be created or written, or None when it can."""
    if directory.exists() and not directory.is_dir():
        return f"{directory} is a file, not a folder"
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so no folder can be made under it"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def describe_existing_run(directory: Path) -> list[str]:
    return [name for name in RUN_MARKERS if (directory / name).exists()]


def check_before_hydra(argv: Sequence[str], command: str) -> None:
    """Claim the folder named by ``hydra.run.dir=`` (``hydra.sweep.dir=`` for a ``-m`` sweep) for
    this process, and raise ``RunDirectoryError`` when it cannot be written, a live run holds it,
    or it holds another run (for train.py: unless resuming the run in it) or another sweep."""
    if rank_zero_only.rank != 0:
        return  # other processes of a DDP run join the directory rank 0 has claimed
    if "-m" in argv or "--multirun" in argv:
        check_sweep_directory(argv, command)
        return
    value = override_value(argv, "hydra.run.dir")
    if not value or "${" in value:
        return  # the default directory is new (named after the start time); the command claims the resolved one
    directory = Path(value)
    problem = writable_problem(directory)
    if problem:
        raise RunDirectoryError(
            f"hydra.run.dir={value}: {problem}; nothing was written. Set hydra.run.dir= to a writable folder"
        )
    existing = describe_existing_run(directory) if directory.is_dir() else []
    claim(directory, command, f"hydra.run.dir={value}")
    if not existing:
        return
    if command == "train":
        ckpt_path = override_value(argv, "ckpt_path")
        if ckpt_path and directory.resolve() in Path(ckpt_path).resolve().parents:
            return  # resuming the run that lives here
    raise RunDirectoryError(already_holds_a_run(directory, existing, command, f"hydra.run.dir={value}"))


def check_sweep_directory(argv: Sequence[str], command: str) -> None:
    """A sweep writes ``multirun.yaml`` and one folder per member into ``hydra.sweep.dir``: a
    folder that holds an earlier sweep is refused before Hydra rewrites any of it."""
    value = override_value(argv, "hydra.sweep.dir")
    if not value:
        return  # the default sweep directory is new (named after the start time)
    directory = Path(value)
    problem = writable_problem(directory)
    if problem:
        raise RunDirectoryError(
            f"hydra.sweep.dir={value}: {problem}; nothing was written. Set hydra.sweep.dir= to a writable folder"
        )
    existing = [p.name for p in sorted(directory.iterdir())] if directory.is_dir() else []
    claim(directory, f"{command} -m", f"hydra.sweep.dir={value}")
    existing = [name for name in existing if name != LOCK_NAME]
    if existing:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise RunDirectoryError(
            f"hydra.sweep.dir={value}: the folder already holds files ({shown}), e.g. an earlier sweep; nothing was "
            "overwritten. Choose another hydra.sweep.dir=..."
        )


def already_holds_a_run(
    directory: Path, existing: list[str], command: str, where: str | None = None, setting: str = "hydra.run.dir"
) -> str:
    """The refusal message: what is there, that nothing was touched, and what to do instead."""
    text = (
        f"{where or 'run directory ' + str(directory)}: the folder already holds a run ({', '.join(existing)}); "
        f"nothing was overwritten. Choose another {setting}=..."
    )
    last = directory / "checkpoints" / "last.ckpt"
    if command == "train":
        if last.is_file():
            text += f", or resume that run with ckpt_path={last}"
        else:
            text += (
                " (it holds no checkpoints/last.ckpt to resume from: the run ended before its first checkpoint; "
                "remove the folder to reuse it)"
            )
    else:
        text += " (evaluate.py and segattn-predict write their results into a run directory of their own)"
    return text

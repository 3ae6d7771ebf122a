"""One process owns a run folder: the lock file, live and stale holders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from segattn.cli import run_lock
from segattn.cli.run_lock import LOCK_NAME, claim, release
from segattn.errors import RunDirectoryError
from tests.helpers.paths import ROOT


def _lock_of(folder, pid):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": socket.gethostname(), "command": "train", "started": "2026-01-01 00:00:00"}
    (folder / LOCK_NAME).write_text(json.dumps(record))


def test_a_folder_held_by_a_live_process_is_refused_naming_it(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_of(tmp_path / "run", sleeper.pid)
        with pytest.raises(
            RunDirectoryError, match=rf"hydra.run.dir=x: a live run holds this folder: train \(process {sleeper.pid} on"
        ):
            claim(tmp_path / "run", "train", "hydra.run.dir=x")
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == sleeper.pid  # untouched
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_released(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_of(tmp_path / "run", dead.pid)
    claim(tmp_path / "run", "evaluate", "hydra.run.dir=x")
    owner = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert owner["pid"] == os.getpid() and owner["command"] == "evaluate"
    claim(tmp_path / "run", "evaluate", "hydra.run.dir=x")  # the holder may claim again
    release(tmp_path / "run" / LOCK_NAME)
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_two_processes_started_together_get_one_folder(tmp_path):
    """Both race for the lock; exactly one wins, the other is told a live run holds it."""
    code = (
        "import pathlib, time\n"
        "from segattn.cli.run_lock import claim\n"
        "from segattn.errors import RunDirectoryError\n"
        "try:\n"
        f"    claim(pathlib.Path({str(tmp_path / 'run')!r}), 'train', 'hydra.run.dir=x')\n"
        "    print('won')\n"
        "    time.sleep(3)\n"
        "except RunDirectoryError as err:\n"
        "    print('refused', err)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs[1] == "won" and outputs[0].startswith("refused") and "a live run holds this folder" in outputs[0]
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released when the winner exited


def test_an_unreadable_fresh_lock_counts_as_held(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text("")  # created, not yet written by its owner
    with pytest.raises(RunDirectoryError, match="another segattn command"):
        claim(tmp_path / "run", "train", "hydra.run.dir=x")
    monkeypatch.setattr(run_lock.time, "time", lambda: 1e12)  # long after: damaged, not being written
    claim(tmp_path / "run", "train", "hydra.run.dir=x")

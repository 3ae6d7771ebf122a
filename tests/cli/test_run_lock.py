"""segattn.cli.run_lock: one process owns a run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from segattn.cli.run_lock import LOCK_NAME, claim, read_lock, release
from segattn.errors import RunDirectoryError
from tests.helpers.paths import ROOT


def holder(folder, seconds: float) -> subprocess.Popen:
    """A process that claims ``folder`` and keeps it for ``seconds`` (then ends, releasing it)."""
    code = (
        "import pathlib, sys, time\n"
        "from segattn.cli.run_lock import claim\n"
        f"claim(pathlib.Path({str(folder)!r}), 'train', 'hydra.run.dir=x')\n"
        "print('claimed', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_folder_held_by_a_live_process_is_refused_naming_it(tmp_path):
    proc = holder(tmp_path / "run", 60)
    try:
        with pytest.raises(
            RunDirectoryError, match=rf"hydra.run.dir=y: a live run holds this folder: train \(process {proc.pid} on"
        ):
            claim(tmp_path / "run", "evaluate", "hydra.run.dir=y")
        assert read_lock(tmp_path / "run" / LOCK_NAME)["pid"] == proc.pid  # untouched
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_no_lock(tmp_path):
    proc = holder(tmp_path / "run", 60)
    proc.kill()  # SIGKILL: no clean-up ran, the lock file stays behind
    proc.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()
    claim(tmp_path / "run", "evaluate", "hydra.run.dir=x")
    owner = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert owner["pid"] == os.getpid() and owner["command"] == "evaluate"
    claim(tmp_path / "run", "evaluate", "hydra.run.dir=x")  # the holder may claim again
    release(tmp_path / "run")


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


def test_a_lock_file_that_is_not_a_record_is_read_as_unknown(tmp_path):
    (tmp_path / LOCK_NAME).write_text("[]")
    assert read_lock(tmp_path / LOCK_NAME) == {}
    proc = holder(tmp_path / "run", 60)
    try:
        (tmp_path / "run" / LOCK_NAME).write_text("not json")
        with pytest.raises(RunDirectoryError, match="a live run holds this folder: another segattn command"):
            claim(tmp_path / "run", "train", "hydra.run.dir=x")
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_released_with_its_file_removed_can_be_claimed_again(tmp_path):
    folder = tmp_path / "out"
    claim(folder, "predict", "output_dir=out")
    release(folder, remove=True)
    assert not (folder / LOCK_NAME).exists()
    claim(folder, "predict", "output_dir=out")  # a new file, locked by this process
    try:
        assert read_lock(folder / LOCK_NAME)["pid"] == os.getpid()
        code = (
            "import pathlib\n"
            "from segattn.cli.run_lock import claim\n"
            f"claim(pathlib.Path({str(folder)!r}), 'predict', 'output_dir=out')\n"
        )
        other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert other.returncode != 0 and f"a live run holds this folder: predict (process {os.getpid()}" in other.stderr
    finally:
        release(folder, remove=True)

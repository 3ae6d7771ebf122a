"""Running the commands (train.py, evaluate.py, segattn-predict, ...) as a user would, and checking refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import ROOT


def run(script: str, *overrides: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python <script>.py overrides...`` from the project root, or the installed console
    script ``<script>`` (e.g. ``segattn-predict``), as a user would; ``env`` adds to (or replaces)
    the environment's variables (warnings are ignored unless it sets ``PYTHONWARNINGS``)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    command = (
        [sys.executable, str(ROOT / script)] if script.endswith(".py") else [str(Path(sys.executable).parent / script)]
    )
    proc = subprocess.run([*command, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def refused(proc, *expected: str) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    for part in expected:
        assert part in text, (part, text[-3000:])
    return text

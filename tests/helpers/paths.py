"""Paths in the repository that tests run commands from and read configs in."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root: tests/helpers/paths.py is two levels down

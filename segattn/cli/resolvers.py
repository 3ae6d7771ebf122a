"""Where the configs live, and the OmegaConf resolvers they use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"


def register_resolvers() -> None:
    """``${segattn_project_root:}`` → the project folder (holding configs/ and data/)."""
    if not OmegaConf.has_resolver("segattn_project_root"):
        OmegaConf.register_new_resolver("segattn_project_root", lambda: str(PROJECT_ROOT))

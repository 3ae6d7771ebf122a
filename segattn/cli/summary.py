"""The last thing ``train.py`` prints: how the run went, where its files are, what to run next."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lightning.pytorch import Trainer

from segattn.training.hparams import HParamsLogger


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to copy), else absolute."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)


def tensorboard_command() -> str:
    """``tensorboard`` from this Python's environment when it is there (the venv), else from PATH."""
    local = Path(sys.executable).parent / "tensorboard"
    return _shown(local) if local.exists() else "tensorboard"


def final_summary(
    trainer: Trainer, output_dir: Path, log_path: Path | None = None, sweep_dir: Path | None = None
) -> str:
    """Best val/dice and its epoch, the checkpoints, the log file, and the next commands."""
    tracker = next((cb for cb in trainer.callbacks if isinstance(cb, HParamsLogger)), None)
    checkpoint = trainer.checkpoint_callback
    lines = [
        f"Finished after {trainer.current_epoch} epochs ({trainer.global_step} steps). "
        f"Run directory: {_shown(output_dir)}"
    ]
    if tracker is not None and tracker.best_dice is not None:
        iou = f", val/iou {tracker.best_iou:.4f}" if tracker.best_iou is not None else ""
        lines.append(
            f"  best val/dice {tracker.best_dice:.4f}{iou} at epoch {tracker.best_epoch} "
            "(numbered as in the progress bar)"
        )
    elif checkpoint is not None and checkpoint.best_model_score is not None:
        lines.append(f"  best val/dice {float(checkpoint.best_model_score):.4f}")
    else:
        lines.append("  no validation ran, so there is no best val/dice")
    best = Path(checkpoint.best_model_path) if checkpoint is not None and checkpoint.best_model_path else None
    last = output_dir / "checkpoints" / "last.ckpt"
    if best is not None:
        lines.append(f"  best checkpoint: {_shown(best)}")
    if last.exists():
        lines.append(f"  last checkpoint: {_shown(last)} (resume with ckpt_path=...)")
    if log_path is not None:
        lines.append(f"  console log:     {_shown(log_path)}")
    lines.append("Next:")
    lines.append(
        f"  {tensorboard_command()} --logdir {_shown(output_dir / 'tensorboard')}   "
        "# curves, HParams, attention figures"
    )
    if sweep_dir is not None:
        lines.append(
            f"  {tensorboard_command()} --logdir {_shown(sweep_dir)}   "
            "# every run of this sweep side by side (HParams tab)"
        )
    if best is not None:
        lines.append(f"  python evaluate.py ckpt_path={_shown(best)}   # Dice/IoU on the test split")
    return "\n".join(lines)

"""``python train.py`` / ``segattn-train``: Hydra composes ``configs/train.yaml``, Lightning trains.

Straight-line, as in the lightning-hydra-template: validate → seed → data → model → callbacks
and loggers → trainer → fit (→ test). The run directory gets checkpoints/, tensorboard/ and the
resolved config.yaml. Known failures (bad config, missing data, unusable checkpoint, occupied run
directory, non-finite loss) end with one clear message and exit code 2, not a stack trace.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from segattn.checkpoint import CheckpointError, load_checkpoint, weight_mismatches
from segattn.cli.common import run_or_exit
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.config import ConfigError, validate_train_config
from segattn.data.errors import DatasetContentError, DatasetLayoutError
from segattn.training.atomic_checkpoint_io import AtomicCheckpointIO
from segattn.training.module import NonFiniteLossError, SegmentationModule

log = logging.getLogger(__name__)
MODEL_TARGET = "segattn.models.UNetAttention"


class RunDirectoryError(RuntimeError):
    """The run directory holds another run, or cannot be written."""


def network_kwargs(model_cfg: DictConfig, in_channels: int, num_classes: int) -> dict[str, Any]:
    """The model config as ``UNetAttention`` keyword arguments, with channels and classes taken
    from the data (the dataset, not the model config, knows how many there are)."""
    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    target = kwargs.pop("_target_", MODEL_TARGET)
    if target != MODEL_TARGET:
        raise ConfigError(f"model._target_: got {target!r}; expected {MODEL_TARGET}")
    kwargs.update(in_channels=in_channels, num_classes=num_classes)
    return kwargs


def check_run_directory(output_dir: Path, ckpt_path: str | None) -> None:
    """Refuse to write into a directory that holds another run (unless resuming that very run),
    and report an unwritable directory now rather than at the first checkpoint."""
    existing = [name for name in ("checkpoints", "tensorboard", "config.yaml") if (output_dir / name).exists()]
    resuming_here = ckpt_path is not None and output_dir.resolve() in Path(ckpt_path).resolve().parents
    if existing and not resuming_here:
        raise RunDirectoryError(
            f"run directory {output_dir} already holds a run ({', '.join(existing)}); nothing was overwritten. "
            f"Choose another hydra.run.dir=..., or resume that run with ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}"
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir):
            pass
    except OSError as err:
        raise RunDirectoryError(f"run directory {output_dir} is not writable: {err}. Set hydra.run.dir= to a writable folder") from None


def check_resume_checkpoint(ckpt_path: str, module: SegmentationModule) -> None:
    """Open the checkpoint to resume from safely and check that its weights fit this model."""
    checkpoint = load_checkpoint(ckpt_path)
    problems = weight_mismatches(module.state_dict(), checkpoint["state_dict"])
    if problems:
        raise CheckpointError(f"{ckpt_path}: cannot resume: its weights do not fit the configured model: {'; '.join(problems)}")


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) as configured; return the final logged metrics."""
    validate_train_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:
        check_run_directory(output_dir, cfg.ckpt_path)
    if cfg.seed is not None:
        L.seed_everything(cfg.seed, workers=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # fail here, before any training starts, if the data is not there
    module = SegmentationModule(
        net=network_kwargs(cfg.model, datamodule.in_channels, datamodule.num_classes),
        class_names=list(datamodule.class_names),
        ignore_index=datamodule.ignore_index,
        config=resolved,
        **OmegaConf.to_container(cfg.module, resolve=True),
    )
    if cfg.ckpt_path is not None:
        check_resume_checkpoint(cfg.ckpt_path, module)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()])
    if rank_zero_only.rank == 0:
        OmegaConf.save(OmegaConf.create(resolved), output_dir / "config.yaml")

    log.info("Training in %s", output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test_after_training"):
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


KNOWN_FAILURES = (ConfigError, DatasetLayoutError, DatasetContentError, CheckpointError, RunDirectoryError, NonFiniteLossError)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return run_or_exit(train, cfg, KNOWN_FAILURES).get("val/dice")  # what Hydra sweepers optimise


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()

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
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from segattn.checkpoint import load_checkpoint, weight_mismatches
from segattn.cli.common import build, run_or_exit
from segattn.cli.console import mirror_to_log_file, quiet_console
from segattn.cli.inference_setup import flips_as_trained, turns_as_trained
from segattn.cli.preflight import preflight
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.cli.run_directory import already_holds_a_run
from segattn.cli.run_lock import claim
from segattn.cli.summary import final_summary
from segattn.config import validate_train_config
from segattn.config.validation import fitted_problems
from segattn.data.checks import check_samples, scored_classes_problem
from segattn.data.io import set_max_pixels
from segattn.errors import (
    CheckpointError,
    ConfigError,
    DatasetContentError,
    RunDirectoryError,
)
from segattn.files import write_text
from segattn.models.encoders import ensure_weights
from segattn.models.encoders import normalization as encoder_normalization
from segattn.training.atomic_checkpoint_io import AtomicCheckpointIO
from segattn.training.module import SegmentationModule

log = logging.getLogger(__name__)
MODEL_TARGET = "segattn.models.UNetAttention"


def network_kwargs(model_cfg: DictConfig, in_channels: int, num_classes: int) -> dict[str, Any]:
    """The model config as ``UNetAttention`` keyword arguments, with channels and classes taken
    from the data (the dataset, not the model config, knows how many there are)."""
    kwargs = OmegaConf.to_container(model_cfg, resolve=True)
    target = kwargs.pop("_target_", MODEL_TARGET)
    if target != MODEL_TARGET:
        raise ConfigError(f"model._target_: got {target!r}; expected {MODEL_TARGET}")
    for key, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        given = kwargs.get(key)
        if given is not None and given != value:
            raise ConfigError(
                f"model.{key}: got {given!r}, but the data has {value}; leave it null (it is taken from the data)"
            )
    kwargs.update(in_channels=in_channels, num_classes=num_classes)
    return kwargs


def check_run_directory(output_dir: Path, ckpt_path: str | None, setting: str = "hydra.run.dir") -> None:
    """Claim the run directory for this process, refuse one that holds another run (unless
    resuming that very run), and report an unwritable directory now rather than at the first
    checkpoint. ``setting``: the option that chose the folder, for the messages."""
    try:
        claim(output_dir, "train", f"run directory {output_dir}")
        with tempfile.NamedTemporaryFile(dir=output_dir):
            pass
    except OSError as err:
        raise RunDirectoryError(
            f"run directory {output_dir} is not writable: {err}. Set {setting}= to a writable folder"
        ) from None
    existing = [name for name in ("checkpoints", "tensorboard", "config.yaml") if (output_dir / name).exists()]
    resuming_here = ckpt_path is not None and output_dir.resolve() in Path(ckpt_path).resolve().parents
    if existing and not resuming_here:
        raise RunDirectoryError(already_holds_a_run(output_dir, existing, "train", setting=setting))


#: Settings that shape the learning-rate schedule (its length and values): a resumed run must keep them.
SCHEDULE_KEYS = (
    "module.scheduler",
    "module.lr",
    "module.warmup_fraction",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.accumulate_grad_batches",
    "trainer.limit_train_batches",
    "trainer.devices",
    "trainer.num_nodes",
    "data.batch_size",
    "data.max_samples",
)


def _lookup(config: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config:
            return None
        config = config[part]
    return config


def check_resume_checkpoint(ckpt_path: str, module: SegmentationModule, config: dict) -> None:
    """Open the checkpoint to resume from safely; check that its weights fit this model and that
    the settings shaping the schedule are the ones it was trained with (resuming continues that
    run: a longer run or another schedule is a new run, started with ``init_from``)."""
    checkpoint = load_checkpoint(ckpt_path)
    problems = weight_mismatches(module.state_dict(), checkpoint["state_dict"])
    if problems:
        raise CheckpointError(
            f"{ckpt_path}: cannot resume: its weights do not fit the configured model: {'; '.join(problems)}"
        )
    saved = (checkpoint.get("hyper_parameters") or {}).get("config") or {}
    changed = [
        f"{key}: {_lookup(saved, key)!r} in the checkpoint, {_lookup(config, key)!r} now"
        for key in SCHEDULE_KEYS
        if saved and _lookup(saved, key) != _lookup(config, key)
    ]
    if changed:
        raise CheckpointError(
            f"{ckpt_path}: cannot resume: resuming continues the same run, but settings that shape its learning-rate "
            f"schedule differ ({'; '.join(changed)}). Resume with the checkpoint's values, or start a new run from its "
            f"weights with init_from={ckpt_path} (instead of ckpt_path)"
        )


def initialise_from(init_from: str, module: SegmentationModule) -> None:
    """Load only the weights of a checkpoint (a new run: fresh optimiser, schedule, epoch 0)."""
    checkpoint = load_checkpoint(init_from)
    problems = weight_mismatches(module.state_dict(), checkpoint["state_dict"])
    if problems:
        raise CheckpointError(
            f"init_from={init_from}: its weights do not fit the configured model: {'; '.join(problems)}"
        )
    module.load_state_dict(checkpoint["state_dict"])
    log.info("Initialised the weights from %s (new run: optimiser, schedule and epochs start afresh)", init_from)


def check_data_fits(cfg: DictConfig, datamodule, world_size: int) -> None:
    """Before the model is built: settings that depend on the data (class weights, an empty
    validation split, a batch of one at a 1x1 bottleneck), then every file of train and val read
    once (``check_data``; on the first process only, the others follow it)."""
    problems = fitted_problems(cfg, datamodule, world_size)
    if problems:
        raise ConfigError("invalid configuration for this data:\n  - " + "\n  - ".join(problems))
    if cfg.get("check_data", True) and rank_zero_only.rank == 0:
        present = check_samples(datamodule, ("train", "val"))
        problem = scored_classes_problem(present["val"], datamodule, bool(cfg.module.get("include_background")))
        if problem:
            raise DatasetContentError(problem)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and optionally test) as configured; return the final logged metrics."""
    quiet_console()
    log_path = mirror_to_log_file()
    validate_train_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:
        check_run_directory(output_dir, cfg.ckpt_path, "hydra.sweep.dir" if sweep_directory() else "hydra.run.dir")
    if cfg.seed is not None:
        L.seed_everything(cfg.seed, workers=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    set_max_pixels((resolved.get("inference") or {}).get("max_pixels"))
    encoder, weights = resolved["model"].get("encoder", "unet"), resolved["model"].get("encoder_weights")
    if weights is not None:
        try:
            ensure_weights(encoder)  # downloaded once into the torch hub cache, before any data is read
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None
    datamodule = build(cfg.data, "data")
    stats = encoder_normalization(encoder, weights, datamodule.in_channels)
    if stats is not None and resolved["data"].get("normalization") is None:
        # the inputs as the pretrained weights expect them; saved with the run, so evaluate, predict
        # and exported models normalise the same way
        datamodule.use_normalization(*stats)
        resolved["data"]["normalization"] = {"mean": stats[0], "std": stats[1]}
    datamodule.prepare_data()
    datamodule.setup("fit")  # fail here, before any training starts, if the data is not there
    inference = dict(resolved.get("inference") or {})
    inference["window"] = inference.get("window") or getattr(datamodule, "patch_size", None)
    inference["tta_vertical"] = flips_as_trained(inference.get("tta_vertical"), datamodule)
    inference["tta_rotate90"] = turns_as_trained(inference.get("tta_rotate90"), datamodule)
    callbacks = [build(c, f"callbacks.{name}") for name, c in (cfg.get("callbacks") or {}).items() if c is not None]
    loggers = [build(c, f"logger.{name}") for name, c in (cfg.get("logger") or {}).items() if c is not None]
    trainer: L.Trainer = build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()]
    )
    check_data_fits(cfg, datamodule, trainer.world_size)
    module = SegmentationModule(
        net=network_kwargs(cfg.model, datamodule.in_channels, datamodule.num_classes),
        class_names=list(datamodule.class_names),
        ignore_index=datamodule.ignore_index,
        inference=inference,
        config=resolved,
        **OmegaConf.to_container(cfg.module, resolve=True),
    )
    if cfg.ckpt_path is not None:
        check_resume_checkpoint(cfg.ckpt_path, module, resolved)
    if cfg.get("init_from") is not None:
        initialise_from(cfg.init_from, module)
    if rank_zero_only.rank == 0:
        write_text(output_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(resolved)))

    log.info("Training in %s", output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test_after_training"):
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if rank_zero_only.rank == 0:
        log.info("%s", final_summary(trainer, output_dir, log_path, sweep_directory()))
    return metrics


def sweep_directory() -> Path | None:
    """The multirun's folder (holding every run of a ``-m`` sweep), or None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    return run_or_exit(train, cfg).get("val/dice")  # what Hydra sweepers optimise


def main() -> None:
    register_resolvers()
    preflight("train", "train")
    _hydra_main()


if __name__ == "__main__":
    main()

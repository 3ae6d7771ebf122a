"""``python evaluate.py ckpt_path=<file>`` / ``segattn-evaluate``: Dice and IoU of a checkpoint.

Loads the checkpoint weights-only, rebuilds model and data from the config saved in it (data keys
overridable), scores the ``test`` (default) or ``val`` split, prints a table and writes
``metrics.json`` in the run directory (definitions: ``segattn/metrics/scores.py``).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from segattn.checkpoint import load_checkpoint
from segattn.cli.common import check_classes_match, datamodule_from_checkpoint, pick_device, run_or_exit
from segattn.cli.inference_setup import prepare_inference
from segattn.cli.preflight import preflight
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.cli.run_lock import claim
from segattn.data.base import as_image_tensor
from segattn.data.checks import check_samples
from segattn.data.patches import rescale
from segattn.errors import ConfigError, DatasetContentError, RunDirectoryError
from segattn.figures import denormalize, normalization_of
from segattn.figures.overlay import colour_classes, to_uint8
from segattn.files import save_png, writable_folder_problem, write_text
from segattn.inference import probabilities_at
from segattn.metrics.attention import AttentionStats
from segattn.metrics.scores import SegmentationScores
from segattn.training.module import module_from_checkpoint

log = logging.getLogger(__name__)
SPLITS = ("test", "val")
RESOLUTIONS = ("model", "native")
DEFINITIONS = {
    "mean": "dataset-level: TP/FP/FN summed over all images, score per class, mean over the scored classes",
    "dataset_level": "same as mean",
    "per_image_mean": "score per (image, class) pair with a non-empty union, averaged over those pairs",
}


def evaluate(cfg: DictConfig) -> dict:
    """Score the checkpoint on the configured split; return (and write) the metrics report."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split: got {cfg.split!r}; allowed: {', '.join(SPLITS)}")
    if cfg.resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution: got {cfg.resolution!r}; allowed: {', '.join(RESOLUTIONS)}")
    device = pick_device(cfg.device)
    problem = writable_folder_problem(cfg.paths.output_dir)
    if problem:
        raise RunDirectoryError(f"{problem}; nothing was written. Set hydra.run.dir= to a writable folder")
    claim(Path(cfg.paths.output_dir), "evaluate", f"run directory {cfg.paths.output_dir}")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    module = module_from_checkpoint(checkpoint, cfg.ckpt_path).to(device).eval()
    datamodule = datamodule_from_checkpoint(checkpoint, OmegaConf.to_container(cfg.data), cfg.ckpt_path)
    check_classes_match(checkpoint, datamodule, cfg.ckpt_path)
    datamodule.cache = False  # one pass over one split: nothing to gain from decoding every split first
    prepare_inference(module, datamodule, OmegaConf.to_container(cfg.inference))
    datamodule.setup("test" if cfg.split == "test" else "validate")
    if len(datamodule.dataset(cfg.split)) == 0:
        sizes = {split: len(datamodule.dataset(split).samples) for split in ("train", "val", "test")}
        with_images = [f"{split} ({n} images)" for split, n in sizes.items() if n and split in SPLITS]
        raise DatasetContentError(
            f"split={cfg.split}: the {cfg.split} split of this data is empty "
            f"(data.root={getattr(datamodule, 'root', 'n/a')}); "
            + (
                f"splits with images: {', '.join(with_images)}, e.g. split={with_images[0].split()[0]}"
                if with_images
                else "no split has images"
            )
        )
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()

    if cfg.get("check_data", True):
        check_samples(datamodule, (cfg.split,))
    hp = checkpoint["hyper_parameters"]
    scores = module.test_scores  # built from the checkpoint's classes, ignore_index and background setting
    ignore_index = datamodule.ignore_index
    if ignore_index != hp.get("ignore_index"):
        # The data says which pixels carry no label (e.g. data.ignore_border=true on a model trained without it).
        log.warning(
            "The data leaves out pixels labelled %s; the checkpoint was trained with ignore_index=%s. "
            "Scoring follows the data",
            ignore_index,
            hp.get("ignore_index"),
        )
        scores = SegmentationScores(
            scores.num_classes, hp["class_names"], ignore_index, hp.get("include_background", False)
        ).to(device)
    scores.reset()
    output_dir = Path(cfg.paths.output_dir)
    prediction_dir = output_dir / "predictions"
    if cfg.save_predictions:
        prediction_dir.mkdir(parents=True, exist_ok=True)
    net = module.net
    # The maps come from the explicit path of a single forward pass (resize mode, no flips).
    single_pass = module.inference.mode == "resize" and not module.inference.tta
    with_attention = (
        cfg.attention_stats
        and single_pass
        and cfg.resolution == "model"
        and (net.self_attention is not None or net.cross_attention is not None)
    )
    attention = AttentionStats(ignore_index)
    stats = normalization_of(datamodule.dataset(cfg.split).transform)  # to show the images as they were
    batches = native_batches(datamodule.dataset(cfg.split)) if cfg.resolution == "native" else loader
    with torch.inference_mode():
        for batch in batches:
            images, masks = batch["image"].to(device), batch["mask"].to(device)
            if with_attention:
                # The explicit path gives the same logits (tested) and the maps besides.
                logits, maps = net(images, return_attention=True)
                attention.update(maps, masks)
            else:
                logits = module.predict_logits(images)
            if logits.shape[-2:] != masks.shape[-2:]:  # the model ran on a resized image: back to the mask's pixels
                logits = probabilities_at(logits, masks.shape[-2:])
            preds = logits.argmax(dim=1)
            scores.update(preds, masks)
            preds = preds.cpu()
            if cfg.save_predictions:
                for image, pred, name in zip(batch["image"], preds, batch["name"]):
                    save_png(prediction_dir / f"{name}_mask.png", pred.to(torch.uint8).numpy())
                    if image.shape[-2:] != pred.shape:
                        image = F.interpolate(
                            image[None].float(), size=pred.shape, mode="bilinear", align_corners=False
                        )[0]
                    photo = denormalize(image, stats)
                    overlay = to_uint8(colour_classes(photo, pred.numpy(), ignore_index))
                    save_png(prediction_dir / f"{name}_overlay.png", overlay)

    report = scores.compute()
    for metric in ("dice", "iou"):
        report[metric]["dataset_level"] = report[metric]["mean"]
    result = {
        "split": cfg.split,
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "num_images": report.pop("num_images"),
        **report,
        "classes_in_mean": [hp["class_names"][c] for c in scores.included],
        "ignore_index": ignore_index,
        "resolution": cfg.resolution,
        "inference": asdict(module.inference),
        "definitions": DEFINITIONS,
    }
    if with_attention:
        result["attention"] = attention.compute()
    output_dir.mkdir(parents=True, exist_ok=True)
    result = _nan_to_none(result)
    write_text(output_dir / "metrics.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(format_table(result))
    log.info("Wrote %s", output_dir / "metrics.json")
    return result


def native_batches(dataset):
    """One-image batches: the image as the model takes it (the split's transform: resized, or
    rescaled for patch-trained models) and the mask at the image's original size, so every
    pipeline is scored on the same pixels."""
    for sample in dataset.samples:
        image, mask = sample.load(dataset.grey, dataset.table)
        scaled, _ = rescale(image, None, dataset.scale)
        x = as_image_tensor(dataset.transform(image=scaled)["image"])
        yield {"image": x[None], "mask": torch.from_numpy(mask).long()[None], "name": [sample.name]}


def _nan_to_none(value):
    """JSON has no NaN: scores that do not exist (empty or ignored classes) become null."""
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def format_table(result: dict) -> str:
    """A Markdown table: one row per class and the means."""
    inference = result["inference"]
    how = inference["mode"] + (
        f" (window {inference['window']}, overlap {inference['overlap']})"
        if inference["mode"] == "sliding_window"
        else ""
    )
    lines = [
        f"{result['split']} split, {result['num_images']} images, checkpoint {result['checkpoint']}",
        f"inference: {how}{', flips averaged' if inference['tta'] else ''}; "
        f"scored at {result['resolution']} resolution",
        "",
        "| class | Dice | IoU |",
        "|---|---|---|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for cls in result["dice"]["per_class"]:
        lines.append(f"| {cls} | {fmt(result['dice']['per_class'][cls])} | {fmt(result['iou']['per_class'][cls])} |")
    lines.append(f"| **mean, dataset-level** | {fmt(result['dice']['mean'])} | {fmt(result['iou']['mean'])} |")
    lines.append(
        f"| **mean, per image** | {fmt(result['dice']['per_image_mean'])} | {fmt(result['iou']['per_image_mean'])} |"
    )
    for key, values in result.get("attention", {}).items():
        lines.append(f"{key}: {', '.join(fmt(v) for v in values) if isinstance(values, list) else fmt(values)}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(evaluate, cfg)


def main() -> None:
    register_resolvers()
    preflight("evaluate", "eval")
    _hydra_main()


if __name__ == "__main__":
    main()

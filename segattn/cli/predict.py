"""``segattn-predict ckpt_path=<file> input_dir=<folder>``: masks for images that have none.

``ckpt_path`` is a training checkpoint, or a model written by ``segattn-export`` (ONNX, run by
onnxruntime, or TorchScript), which carries the data and inference settings of its training run.

Each image is read as the training data was (RGB or grey), passed through the data module's eval
transform (``inference.mode=resize``: resize and normalise; patch-trained models and
``sliding_window``: normalise at native scale), segmented (a sliding window of Gaussian-weighted
windows for large images, flips averaged with ``inference.tta=true``), and the probabilities are
resized back to the image's own size where needed, so ``<name>_mask.png`` (class ids as pixel
values) matches the original pixel for pixel; ``<name>_overlay.png`` shows it over the image. An
unreadable image is skipped; the command then ends with an error naming the skipped files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from segattn.checkpoint import load_checkpoint
from segattn.cli.common import datamodule_from_checkpoint, datamodule_from_config, pick_device, run_or_exit
from segattn.cli.inference_setup import prepare_inference
from segattn.cli.preflight import preflight
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.cli.run_lock import claim, release
from segattn.data.io import IMAGE_EXTENSIONS, read_image
from segattn.data.patches import rescale
from segattn.errors import DatasetContentError, DatasetLayoutError, OutputExistsError, RunDirectoryError
from segattn.export import ExportedModel, is_exported_model
from segattn.figures.overlay import colour_classes, to_uint8
from segattn.files import save_png, writable_folder_problem
from segattn.inference import probabilities_at
from segattn.training.module import module_from_checkpoint

log = logging.getLogger(__name__)


def output_suffixes(overlay: bool) -> tuple[str, ...]:
    return ("_mask.png", "_overlay.png") if overlay else ("_mask.png",)


def output_names(images: list[Path]) -> dict[Path, str]:
    """The output name of each image: its stem, or, when several inputs share a stem (``cat.jpg``
    and ``cat.png``), stem and extension (``cat_jpg``, ``cat_png``), so no mask replaces another.

    Names are compared ignoring case (``cat.png`` and ``cat.PNG``; case-insensitive file systems
    would also merge ``Cat`` and ``cat``). A name still taken, by an image whose own stem it is
    (``cat_png.jpg`` besides ``cat.png`` and ``cat.jpg``) or by an earlier image, gets a counter:
    ``cat_png_2``.
    """
    stems: dict[str, int] = {}
    for path in images:
        stems[path.stem.lower()] = stems.get(path.stem.lower(), 0) + 1

    def own(path: Path) -> bool:  # the only image with its stem: the stem is its name
        return stems[path.stem.lower()] == 1

    # Images with a stem of their own are named first; the others in a stable order.
    order = [p for p in images if own(p)] + sorted(
        (p for p in images if not own(p)), key=lambda p: (p.stem.lower(), p.name)
    )
    names: dict[Path, str] = {}
    used: set[str] = set()
    for path in order:
        base = path.stem if own(path) else f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        name, counter = base, 2
        while name.lower() in used:
            name, counter = f"{base}_{counter}", counter + 1
        used.add(name.lower())
        names[path] = name
    return {path: names[path] for path in images}


def check_output_dir(input_dir: Path, output_dir: Path, file_names: list[str]) -> None:
    """Refuse, before the model is loaded, an output folder that is a file, is the input folder
    (a second run would segment its own masks), or already holds masks this run would replace."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output_dir={output_dir} is a file, not a folder; choose a folder for the masks")
    if output_dir.resolve() == input_dir.resolve():
        raise OutputExistsError(
            f"output_dir={output_dir} is the input_dir: the masks would be written among the images (and segmented as "
            "images on the next run); choose another output_dir"
        )
    problem = writable_folder_problem(output_dir)
    if problem:
        raise RunDirectoryError(
            f"output_dir={output_dir}: {problem}; nothing was written. Choose a writable output_dir"
        )
    existing = [name for name in file_names if (output_dir / name).exists()]
    if existing:
        raise OutputExistsError(
            f"output_dir={output_dir} already holds {len(existing)} of the files this run would write "
            f"(first: {', '.join(existing[:3])}); nothing was overwritten. Choose another output_dir, or remove them"
        )


def predict(cfg: DictConfig) -> list[Path]:
    """Write a mask (and overlay) per image of ``cfg.input_dir``; return the mask paths."""
    input_dir = Path(cfg.input_dir)
    if not input_dir.is_dir():
        raise DatasetLayoutError(f"input_dir is not a folder: {input_dir}")
    images = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DatasetLayoutError(f"input_dir {input_dir} holds no images with extensions {sorted(IMAGE_EXTENSIONS)}")
    output_dir = Path(cfg.output_dir)
    outputs = output_names(images)
    check_output_dir(
        input_dir,
        output_dir,
        [f"{stem}{suffix}" for stem in outputs.values() for suffix in output_suffixes(cfg.overlay)],
    )
    claim(output_dir, "predict", f"output_dir={output_dir}")  # two predictions into one folder would mix their masks
    try:
        return write_masks(cfg, images, outputs, output_dir)
    finally:
        release(output_dir, remove=True)  # the folder is the user's: leave only the masks there


def write_masks(cfg: DictConfig, images: list[Path], outputs: dict[Path, str], output_dir: Path) -> list[Path]:
    """Predict each image and write its mask (and overlay) to ``output_dir``."""
    input_dir = Path(cfg.input_dir)
    device = pick_device(cfg.device)
    if is_exported_model(cfg.ckpt_path):  # segattn-export's ONNX or TorchScript file
        module = ExportedModel(cfg.ckpt_path, device)
        datamodule = datamodule_from_config(module.data_config, None, cfg.ckpt_path)
    else:
        checkpoint = load_checkpoint(cfg.ckpt_path)
        module = module_from_checkpoint(checkpoint, cfg.ckpt_path).to(device).eval()
        datamodule = datamodule_from_checkpoint(checkpoint, None, cfg.ckpt_path)
    prepare_inference(module, datamodule, OmegaConf.to_container(cfg.inference))
    transform = datamodule.eval_transform
    grey = module.net.in_channels == 1

    output_dir.mkdir(parents=True, exist_ok=True)
    written, unreadable = [], []
    for path in images:
        try:
            original = read_image(path, grey=grey)  # (H, W) or (H, W, 3) uint8
        except DatasetContentError as err:  # one bad file does not cost the rest their masks
            log.error("%s; skipped", err)
            unreadable.append((path.name, str(err)))
            continue
        scaled, _ = rescale(original, None, datamodule.scale)
        x = datamodule.to_tensor(transform(image=scaled)["image"]).unsqueeze(0).to(device)
        with torch.inference_mode():
            logits = module.predict_logits(x)
            if logits.shape[-2:] != original.shape[:2]:
                logits = probabilities_at(logits, original.shape[:2])
        mask = logits.argmax(dim=1)[0].cpu()
        mask_path = output_dir / f"{outputs[path]}_mask.png"
        save_png(mask_path, mask.to(torch.uint8).numpy())
        if cfg.overlay:
            photo = (np.repeat(original[..., None], 3, axis=2) if original.ndim == 2 else original) / 255.0
            overlay = colour_classes(photo, mask.numpy(), datamodule.ignore_index)
            save_png(output_dir / f"{outputs[path]}_overlay.png", to_uint8(overlay))
        written.append(mask_path)
    log.info("Wrote %d masks to %s", len(written), output_dir)
    if unreadable:
        names = ", ".join(name for name, _ in unreadable[:5])
        raise DatasetContentError(
            f"{len(unreadable)} of the {len(images)} images in {input_dir} could not be read and have no mask (first: "
            f"{names}); the other {len(written)} masks are in {output_dir}. The first problem: {unreadable[0][1]}"
        )
    return written


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(predict, cfg)


def main() -> None:
    register_resolvers()
    preflight("predict", "predict")
    _hydra_main()


if __name__ == "__main__":
    main()

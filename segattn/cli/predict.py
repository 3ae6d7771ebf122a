"""``segattn-predict ckpt_path=<file> input_dir=<folder>``: masks for images that have none.

Each image is read as the training data was (RGB or grey), passed through the data module's eval
transform (``inference.mode=resize``: resize and normalise; patch-trained models and
``sliding_window``: normalise at native scale), segmented (a sliding window of Gaussian-weighted
windows for large images, flips averaged with ``inference.tta=true``), and the probabilities are
resized back to the image's own size where needed, so ``<name>_mask.png`` (class ids as pixel
values) matches the original pixel for pixel; ``<name>_overlay.png`` shows it over the image.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from segattn.checkpoint import CheckpointError, load_checkpoint, module_from_checkpoint
from segattn.cli.common import datamodule_from_checkpoint, pick_device, run_or_exit
from segattn.cli.evaluate import configure_inference
from segattn.config import ConfigError
from segattn.data.patches import rescale
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.data.errors import DatasetContentError
from segattn.data.io import IMAGE_EXTENSIONS, read_image
from segattn.visualization import overlay_mask, to_uint8

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> list[Path]:
    """Write a mask (and overlay) per image of ``cfg.input_dir``; return the mask paths."""
    input_dir = Path(cfg.input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input_dir is not a folder: {input_dir}")
    images = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FileNotFoundError(f"input_dir {input_dir} holds no images with extensions {sorted(IMAGE_EXTENSIONS)}")
    device = pick_device(cfg.device)
    checkpoint = load_checkpoint(cfg.ckpt_path)
    module = module_from_checkpoint(checkpoint, cfg.ckpt_path).to(device).eval()
    datamodule = datamodule_from_checkpoint(checkpoint, None, cfg.ckpt_path)
    try:
        configure_inference(module, OmegaConf.to_container(cfg.inference))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if module.inference.mode == "sliding_window" and not datamodule.patch_size:
        datamodule.patch_size = module.window or datamodule.image_size  # native scale, no resizing
    transform = datamodule.eval_transform
    grey = module.net.in_channels == 1

    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        original = read_image(path, grey=grey)  # (H, W) or (H, W, 3) uint8
        scaled, _ = rescale(original, None, datamodule.scale)
        x = datamodule.to_tensor(transform(image=scaled)["image"]).unsqueeze(0).to(device)
        with torch.inference_mode():
            logits = module.predict_logits(x)
            if logits.shape[-2:] != original.shape[:2]:
                logits = F.interpolate(logits.float().softmax(1), size=original.shape[:2], mode="bilinear", align_corners=False)
        mask = logits.argmax(dim=1)[0].cpu()
        mask_path = output_dir / f"{path.stem}_mask.png"
        Image.fromarray(mask.to(torch.uint8).numpy()).save(mask_path)
        if cfg.overlay:
            rgb = np.repeat(original[..., None], 3, axis=2) if original.ndim == 2 else original
            display = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
            Image.fromarray(to_uint8(overlay_mask(display, mask)).numpy()).save(output_dir / f"{path.stem}_overlay.png")
        written.append(mask_path)
    log.info("Wrote %d masks to %s", len(written), output_dir)
    return written


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(predict, cfg, (CheckpointError, ConfigError, FileNotFoundError, DatasetContentError))


def main() -> None:
    register_resolvers()
    _hydra_main()


if __name__ == "__main__":
    main()

"""TensorBoard images of predictions and attention for a fixed set of validation images."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from segattn.models import AttentionMaps
from segattn.visualization import display_image, mark_point, overlay_heatmap, overlay_mask


def query_positions(h: int, w: int, count: int) -> list[tuple[int, int]]:
    """``count`` fixed query cells of an h×w grid spread along the diagonal (centre first)."""
    candidates = [(h // 2, w // 2), (h // 4, w // 4), (3 * h // 4, 3 * w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4)]
    return candidates[: max(0, count)]


class AttentionImageLogger(Callback):
    """Every ``every_n_epochs`` validation epochs, logs for the first ``num_images`` validation images:

    - ``prediction/<name>``: image | ground truth overlay | prediction overlay;
    - ``attention/mhsa/<name>``: for ``num_queries`` marked query positions, the MHSA attention row
      (head-averaged, or one panel per head with ``per_head``) as a heatmap over the image;
    - ``attention/mhca_gate_level<i>/<name>``: the MHCA gate of skip level i over the image.

    Only these steps use the model's explicit attention path; training stays on the fused path.
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 2, num_queries: int = 3, per_head: bool = False) -> None:
        if every_n_epochs < 1 or num_images < 1:
            raise ValueError(f"attention_images: every_n_epochs and num_images must be >= 1, got {every_n_epochs}, {num_images}")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.num_queries = num_queries
        self.per_head = per_head

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.current_epoch % self.every_n_epochs:
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None or trainer.datamodule is None:
            return
        dataset = trainer.datamodule.dataset("val")
        items = [dataset[i] for i in range(min(self.num_images, len(dataset)))]
        if not items:
            return
        images = torch.stack([it["image"] for it in items]).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            logits, maps = pl_module.net(images, return_attention=True)
        pl_module.train(was_training)
        for i, item in enumerate(items):
            for tag, picture in self.render(item, logits[i].argmax(0), maps, i).items():
                logger.experiment.add_image(f"{tag}/{item['name']}", picture, global_step=trainer.global_step, dataformats="CHW")

    def render(self, item: dict, prediction: torch.Tensor, maps: AttentionMaps, index: int) -> dict[str, torch.Tensor]:
        """The pictures of one image, keyed by tag prefix."""
        base = display_image(item["image"])
        h, w = base.shape[-2:]
        pictures = {
            "prediction": torch.cat([base, overlay_mask(base, item["mask"].clamp(min=0)), overlay_mask(base, prediction)], dim=-1)
        }
        if maps.self_attention is not None:
            gh, gw = maps.self_attention_size
            weights = maps.self_attention[index].float().cpu()  # (heads, N, N)
            heads = list(weights) if self.per_head else [weights.mean(0)]
            rows = []
            for head in heads:
                panels = []
                for qr, qc in query_positions(gh, gw, self.num_queries):
                    panel = overlay_heatmap(base, head[qr * gw + qc].reshape(gh, gw))
                    panels.append(mark_point(panel, int((qr + 0.5) * h / gh), int((qc + 0.5) * w / gw)))
                rows.append(torch.cat(panels, dim=-1))
            pictures["attention/mhsa"] = torch.cat(rows, dim=-2)
        for level, gate in enumerate(maps.gates):
            pictures[f"attention/mhca_gate_level{level}"] = torch.cat([base, overlay_heatmap(base, gate[index, 0].float().cpu(), normalize=False)], dim=-1)
        return pictures

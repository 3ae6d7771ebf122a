"""What one drawing of the TensorBoard figures costs, by figure kind.

Run from the repository root:
    python benchmarks/figures.py [--size 128] [--base-channels 16] [--repeats 3] [--output FILE]

The training loop draws every ``every_n_epochs`` epochs (``segattn/training/attention_images.py``),
on the host, whatever the accelerator: on a GPU, where an epoch of the Pet subset takes well under
a second, a drawing of a few seconds is most of the loop's overhead. This runs the callback's
``log_figures`` with its default settings on the validation split of synthetic data (30 images
at ``--size``) for the full model (the attention settings of ``configs/model/unet_attention.yaml``)
and for the plain U-Net, writing to a TensorBoard folder in a temporary directory. The per-image
Dice that ranks the worst images is given as the validation loop would give it, so what is timed
is what the callback itself does on a drawing epoch: the explicit-path forward pass of the chosen
images, the attention statistics and the figures. Each figure kind's time is split into building the matplotlib figure
and ``add_figure`` (rendering with Agg and encoding the PNG).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``segattn`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.tensorboard import SummaryWriter

import segattn.training.attention_images as attention_images
from benchmarks.common import emit, machine_line, markdown_table
from benchmarks.model import config_defaults
from segattn.data import SyntheticDataModule
from segattn.training.module import SegmentationModule

BUILDERS = {"prediction_figure": "predictions", "self_attention_figure": "MHSA", "gate_figure": "gates"}
TAGS = {"1_predictions": "predictions", "2_worst": "predictions", "3_mhsa": "MHSA", "4_gates": "gates"}


class Timings:
    """Seconds and counts per (figure kind, phase), filled by wrappers around the builders and the writer."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = collections.defaultdict(float)
        self.counts: dict[str, int] = collections.defaultdict(int)

    def wrap(self, fn, kind_of, phase: str):
        def timed(*args, **kwargs):
            kind = kind_of(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[kind, phase] += time.perf_counter() - start
                if phase == "build":
                    self.counts[kind] += 1

        return timed


def drawing(variant: str, args: argparse.Namespace, data: SyntheticDataModule, workdir: Path) -> tuple[float, Timings]:
    """Median seconds of one drawing, and the last drawing's breakdown."""
    attention = variant == "MHSA+MHCA"
    net = {
        **config_defaults(),
        "base_channels": args.base_channels,
        "self_attention": attention,
        "cross_attention": attention,
    }
    torch.manual_seed(0)
    module = SegmentationModule(net=net, class_names=data.class_names, channels_last=True).eval()
    dataset = data.dataset("val")
    trainer = SimpleNamespace(datamodule=data, global_step=0)
    callback = attention_images.AttentionImageLogger()
    with (
        torch.no_grad()
    ):  # the per-image Dice the validation loop hands over, so the worst images are not predicted again
        callback._val_dice = dict(zip(dataset.names, callback.dice_per_image(module, dataset, data)))
    writer = SummaryWriter(str(workdir / variant.replace(" ", "_").replace("+", "plus")))
    seconds, timings = [], Timings()
    originals = {name: getattr(attention_images, name) for name in BUILDERS}
    add_figure = writer.add_figure
    try:
        for repeat in range(args.repeats + 1):  # the first one warms up
            timings = Timings()
            for name, kind in BUILDERS.items():
                setattr(attention_images, name, timings.wrap(originals[name], lambda *a, kind=kind, **k: kind, "build"))
            writer.add_figure = timings.wrap(add_figure, lambda tag, *a, **k: TAGS[tag.split("/")[1]], "render")
            start = time.perf_counter()
            with torch.no_grad():
                callback.log_figures(writer, trainer, module, dataset)
            if repeat:
                seconds.append(time.perf_counter() - start)
    finally:
        for name, fn in originals.items():
            setattr(attention_images, name, fn)
        writer.close()
    return statistics.median(seconds), timings


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=128, help="image side (the main job's 128 px)")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed drawings per model (median), after 1 warm-up")
    p.add_argument("--smoke", action="store_true", help="32 px, base 8, 1 repeat: a quick check")
    p.add_argument("--output", help="also write the report to this file")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.base_channels, args.repeats = 32, 8, 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    data = SyntheticDataModule(image_size=args.size, num_val=30)
    data.setup("fit")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("plain U-Net", "MHSA+MHCA"):
            total, timings = drawing(variant, args, data, Path(tmp))
            for kind in ("predictions", "MHSA", "gates"):
                if timings.counts.get(kind):
                    build, render = timings.seconds[kind, "build"], timings.seconds[kind, "render"]
                    rows.append([variant, kind, timings.counts[kind], f"{build:.2f}", f"{render:.2f}", ""])
            rows.append([variant, "whole drawing", "", "", "", f"{total:.2f}"])
    lines = [
        f"One drawing of the figure callback (defaults: 3 fixed images, 2 worst, 3 queries, per-head MHSA) on 30 "
        f"synthetic validation images at {args.size} px, base_channels {args.base_channels}; whole drawing: median "
        f"of {args.repeats} after 1 warm-up, breakdown from the last.",
        machine_line(torch.device("cpu")),
        "",
        markdown_table(["model", "figures", "count", "build s", "render and encode s", "drawing s"], rows),
    ]
    emit("\n".join(lines), args.output)


if __name__ == "__main__":
    main()

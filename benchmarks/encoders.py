"""torchvision encoders under the attention decoder, against segmentation_models_pytorch's Unet
with the same encoder, all from scratch, on Oxford-IIIT Pet.

Run from the repository root (segmentation_models_pytorch installed: ``pip install segmentation-models-pytorch``):
    python benchmarks/encoders.py --seeds 0 1 2 [--encoders resnet18 resnet34] [--output FILE]
    python benchmarks/encoders.py --steps-only             # step time and memory only
    python benchmarks/encoders.py --results benchmarks/results/encoders_pets.json   # add to the recorded runs

Every row trains in this process through the same loop: segattn's LightningModule, the Pet data of
``experiment=pets_binary`` (128 px, batch 16, 20 epochs, its recipe and augmentation), checkpoint of
the best ``val/dice``, which is then scored on the official test list. Only the network differs:

- ``smp Unet``: ``segmentation_models_pytorch.Unet(<encoder>, encoder_weights=None)``, the reference;
- ``segattn plain``: ``model.encoder=<encoder>`` without attention;
- ``segattn MHSA+MHCA``: the same with the MHSA bottleneck and MHCA gates (the defaults);
- ``segattn MHSA+MHCA, double-conv encoder``: the network of the main job (base 16), for scale.

Step cost: forward, cross-entropy, backward and AdamW step at 128 px, batch 16, the networks taking
turns within every repeat; peak memory of one step above what the process held, in a fresh process
per network; multiply-accumulates of one forward pass of one 128 px image (``torch.utils.flop_counter``),
which separate what a network computes from how fast this machine runs it. Every finished run is
appended to ``--results`` (a JSON list; default: ``results.json`` in the work folder); a run
already there (same network, seed and epochs) is not trained again, and the table covers every
run in the file, so seeds and encoders can be added over several invocations. ImageNet-pretrained rows
need the weights (online): ``python train.py experiment=pets_binary model.encoder=resnet34
model.encoder_weights=imagenet``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (
    MIB,
    PeakMemory,
    emit,
    machine_line,
    markdown_table,
    measure_in_subprocess,
    time_interleaved,
)


class SmpNet(nn.Module):
    """segmentation_models_pytorch's Unet with the attributes segattn's module reads."""

    def __init__(self, encoder: str, in_channels: int, num_classes: int) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.model = smp.Unet(encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes)
        self.num_classes, self.in_channels, self.depth = num_classes, in_channels, 5
        self.aux_heads = nn.ModuleList()
        self.encoder = None  # one learning rate for every parameter, as smp's own examples train

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_network(row: dict, in_channels: int, num_classes: int) -> nn.Module:
    from segattn.models import UNetAttention

    if row["kind"] == "smp":
        return SmpNet(row["encoder"], in_channels, num_classes)
    settings = dict(in_channels=in_channels, num_classes=num_classes, **row["net"])
    return UNetAttention(**settings)


def rows_for(encoders: list[str]) -> list[dict]:
    rows = [
        {
            "label": "segattn MHSA+MHCA, double-conv encoder (base 16)",
            "kind": "segattn",
            "encoder": "unet",
            "net": {"base_channels": 16},
        }
    ]
    for encoder in encoders:
        rows += [
            {"label": f"smp Unet, {encoder}", "kind": "smp", "encoder": encoder},
            {
                "label": f"segattn plain, {encoder}",
                "kind": "segattn",
                "encoder": encoder,
                "net": {"encoder": encoder, "self_attention": False, "cross_attention": False},
            },
            {
                "label": f"segattn MHSA+MHCA, {encoder}",
                "kind": "segattn",
                "encoder": encoder,
                "net": {"encoder": encoder},
            },
        ]
    return rows


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from segattn.cli.resolvers import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=["experiment=pets_binary", "paths.output_dir=/tmp/unused", *overrides])


def train_and_test(row: dict, seed: int, epochs: int, workdir: Path) -> dict:
    """Train ``row``'s network in segattn's loop, then score its best checkpoint on the test split."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint
    from omegaconf import OmegaConf

    from segattn.training.module import SegmentationModule

    cfg = compose([f"seed={seed}", f"trainer.max_epochs={epochs}"])
    L.seed_everything(seed, workers=True)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    module_settings = OmegaConf.to_container(cfg.module, resolve=True)
    net = build_network(row, data.in_channels, data.num_classes)
    module = SegmentationModule(
        net={
            "in_channels": data.in_channels,
            "num_classes": data.num_classes,
            "depth": 2,
            "base_channels": 8,
            "heads": 2,
        },  # replaced just below: the module's loss, optimiser and metrics stay
        class_names=list(data.class_names),
        ignore_index=data.ignore_index,
        **module_settings,
    )
    module.net = net.to(memory_format=torch.channels_last) if module_settings.get("channels_last") else net
    folder = workdir / f"{row['label'].replace(' ', '_').replace(',', '')}-seed{seed}"
    best = ModelCheckpoint(dirpath=folder, monitor="val/dice", mode="max", save_top_k=1, filename="best")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        callbacks=[best],
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - start
    trainer.test(module, datamodule=data, ckpt_path=best.best_model_path, weights_only=True, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    params = sum(p.numel() for p in net.parameters())
    return {
        "label": row["label"],
        "encoder": row["encoder"],
        "seed": seed,
        "epochs": epochs,
        "metrics": metrics,
        "seconds": seconds,
        "params": params,
        "machine": machine_line(torch.device("cpu")),
    }


RUN_KEYS = ("label", "encoder", "seed", "epochs", "metrics", "seconds", "params")


def load_results(path: Path) -> list[dict]:
    """The finished runs recorded in ``path``, or none when the file does not exist yet."""
    if not path.is_file():
        return []
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path}: not valid JSON ({error}); expected the list of runs this script writes") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) and set(RUN_KEYS) <= r.keys() for r in results):
        raise SystemExit(f"{path}: expected a JSON list of runs, each with the keys {', '.join(RUN_KEYS)}")
    return results


def recorded_encoders(results: list[dict], encoders: list[str]) -> list[str]:
    """``encoders``, then the torchvision encoders of earlier invocations' runs, each once."""
    return list(dict.fromkeys([*encoders, *(r["encoder"] for r in results if r["encoder"] != "unet")]))


def is_recorded(results: list[dict], row: dict, seed: int, epochs: int) -> bool:
    return any((r["label"], r["seed"], r["epochs"]) == (row["label"], seed, epochs) for r in results)


def step_case(row: dict, batch: int = 16, size: int = 128):
    torch.manual_seed(0)
    net = build_network(row, 3, 2).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, size, size))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()

    return net, step


def memory_case(case: dict) -> None:
    """Run in a fresh process (``--memory-case``): one warm-up step, then the peak of one more."""
    _, step = step_case(case)
    step()
    with PeakMemory(torch.device("cpu")) as peak:
        step()
    print(json.dumps({"peak": peak.peak}))


def forward_gmac(net: nn.Module, size: int = 128) -> float:
    """Multiply-accumulates (10⁹) of one forward pass of one RGB image of ``size``²."""
    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.randn(1, 3, size, size))
    return counter.get_total_flops() / 2e9  # the counter counts a multiply-add as two operations


def step_rows(rows: list[dict], repeats: int) -> list[list]:
    steps = {row["label"]: step_case(row)[1] for row in rows}
    times = time_interleaved(steps, repeats, torch.device("cpu"))
    base = times[rows[0]["label"]]
    out = []
    for row in rows:
        peak = measure_in_subprocess(Path(__file__), row)["peak"] / MIB
        net = build_network(row, 3, 2)
        params = sum(p.numel() for p in net.parameters())
        out.append(
            [
                row["label"],
                f"{params / 1e6:.1f}",
                f"{forward_gmac(net):.2f}",
                f"{times[row['label']] * 1000:.0f}",
                f"{times[row['label']] / base:.2f}×",
                f"{peak:,.0f}",
            ]
        )
    return out


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def quality_table(results: list[dict], rows: list[dict], epochs: int) -> str:
    table = []
    for row in rows:
        runs = [r for r in results if r["label"] == row["label"] and r["epochs"] == epochs]
        if not runs:
            continue
        table.append(
            [
                row["label"],
                len(runs),
                f"{runs[0]['params']:,}",
                mean_std([r["metrics"]["test/dice"] for r in runs]),
                mean_std([r["metrics"]["test/iou"] for r in runs]),
                mean_std([r["metrics"]["test/dice_per_image"] for r in runs]),
                f"{statistics.mean(r['seconds'] for r in runs):.0f}",
            ]
        )
    header = ["network (from scratch)", "seeds", "parameters", "Dice (test)", "IoU", "Dice per image", "train s"]
    return markdown_table(header, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "resnet34"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per network")
    parser.add_argument("--steps-only", action="store_true", help="step time and memory only")
    parser.add_argument("--workdir", default=None, help="where checkpoints go (default: a temporary folder)")
    parser.add_argument(
        "--results", default=None, help="JSON file of finished runs, reused and extended (default: in --workdir)"
    )
    parser.add_argument("--output", default=None)
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        memory_case(json.loads(args.memory_case))
        return
    rows = rows_for(args.encoders)
    sections = [f"Machine: {machine_line(torch.device('cpu'))}", ""]
    header = [
        "network",
        "parameters M",
        "GMAC / image",
        "step ms (128 px, batch 16)",
        "× double-conv",
        "peak MiB above start",
    ]
    sections += ["Training step:", "", markdown_table(header, step_rows(rows, args.repeats)), ""]
    if not args.steps_only:
        if not os.environ.get("SEGATTN_DATA_DIR"):
            raise SystemExit("set SEGATTN_DATA_DIR to the folder holding oxford-pets/ (e.g. ../shared/data)")
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="segattn-encoders-"))
        results_file = Path(args.results) if args.results else workdir / "results.json"
        results = load_results(results_file)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:  # seeds outermost: a stopped run has every network at the seeds it finished
            for row in rows:
                if not is_recorded(results, row, seed, args.epochs):
                    results.append(train_and_test(row, seed, args.epochs, workdir))
                    results_file.write_text(json.dumps(results, indent=1) + "\n")
        seeds = sorted({r["seed"] for r in results if r["epochs"] == args.epochs})
        sections += [
            f"Oxford-IIIT Pet (binary), 128 px, {args.epochs} epochs, seeds {', '.join(map(str, seeds))} "
            f"(runs recorded in {results_file}); best val/dice checkpoint on the official test list; "
            "mean ± sample std over seeds:",
            "",
            quality_table(results, rows_for(recorded_encoders(results, args.encoders)), args.epochs),
        ]
    emit("\n".join(sections), args.output)


if __name__ == "__main__":
    main()

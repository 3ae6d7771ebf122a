"""End-to-end training throughput of ``train.py`` against the model's own training step.

Run from the repository root:
    python benchmarks/pipeline.py [--experiment pets_binary] [--epochs 4] [--device cuda] [--output FILE]

For each ablation, ``train.py`` runs the experiment (default: the main job, Oxford-IIIT Pet at
128 px, batch 16, from ``$SEGATTN_DATA_DIR``) for one warm-up epoch plus ``--epochs`` epochs with
everything a user gets (loader workers, augmentation, validation every epoch, TensorBoard scalars
and figures at their default cadence, checkpoints); a callback (``EpochClock`` below, added with a
Hydra override) records the wall time from the start of the second epoch to the end of the last,
validation and checkpoints included. Images per second = training images × epochs / that time.

The model-only figure is ``benchmarks/model.py``'s step (forward, cross-entropy, backward, AdamW on
a random batch already on the device) for the same widths, image size, batch and memory format,
timed right after that ablation's run. "end-to-end / model" says how much of the model's speed
the loop keeps. The default 4 timed epochs hold one figure epoch (the last), about the main
job's share (figures every 5 epochs: 4 of 20).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L
import torch
import yaml

from benchmarks.common import REPO_ROOT, emit, machine_line, markdown_table, resolve_device, time_interleaved
from benchmarks.model import VARIANTS, build_step
from benchmarks.quality import run
from segattn.data.workers import resolve_num_workers

SWITCHES = {"plain U-Net": "false,false", "+MHSA": "true,false", "+MHCA": "false,true", "MHSA+MHCA": "true,true"}


class EpochClock(L.Callback):
    """Writes ``{"seconds": ..., "epochs": ..., "images": ..., "phases": {...}}`` to ``path``: the
    wall time from the start of epoch ``skip`` to the end of training (validation and checkpoints
    included), and how the timed epochs split it: "train" (from the epoch's start: the loader's
    first batches and the training steps), "validation" (the validation batches), "after
    validation" (from the callbacks' ``on_validation_epoch_end``: the module's metric computation,
    figures, checkpoint writes, logging, up to the next epoch's start or the end of training).
    With validation inside an epoch (``val_check_interval`` < 1) the training batches after it
    count as "after validation"; the benchmark validates once per epoch."""

    def __init__(self, path: str, skip: int = 1) -> None:
        self.path, self.skip, self.start = Path(path), skip, None
        self.phases = {"train": 0.0, "validation": 0.0, "after validation": 0.0}
        self.mark: tuple[str, float] | None = None

    def _switch(self, phase: str | None) -> None:
        now = time.perf_counter()
        if self.mark is not None:
            self.phases[self.mark[0]] += now - self.mark[1]
        self.mark = (phase, now) if phase else None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.skip:
            self.start = time.perf_counter()
        if self.start is not None:
            self._switch("train")

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.start is not None and not trainer.sanity_checking:
            self._switch("validation")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.start is not None and not trainer.sanity_checking:
            self._switch("after validation")

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.start is None or trainer.global_rank != 0:
            return
        self._switch(None)
        epochs = trainer.current_epoch - self.skip
        images = len(trainer.datamodule.dataset("train")) * epochs
        self.path.write_text(
            json.dumps(
                {"seconds": time.perf_counter() - self.start, "epochs": epochs, "images": images, "phases": self.phases}
            )
        )


def end_to_end(variant: str, args: argparse.Namespace, workdir: Path) -> dict:
    sa, ca = SWITCHES[variant].split(",")
    run_dir = workdir / variant.replace(" ", "_").replace("+", "plus_")
    clock = workdir / f"{run_dir.name}.json"
    overrides = [
        f"experiment={args.experiment}",
        f"model.self_attention={sa}",
        f"model.cross_attention={ca}",
        f"trainer.max_epochs={args.epochs + 1}",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "+callbacks.clock._target_=benchmarks.pipeline.EpochClock",
        f"+callbacks.clock.path={clock}",
        *args.override,
    ]
    if args.device == "cuda":
        overrides.append("trainer=gpu")
    run([sys.executable, "train.py", *overrides], workdir / f"{run_dir.name}-train.log")
    result = json.loads(clock.read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return {**result, "config": config}


def model_only(configs: dict[str, dict], device: torch.device, amp: str | None, repeats: int) -> dict[str, float]:
    """Images/s of the bare training step for each ablation, at the run's size, batch and widths."""
    steps = {}
    for variant, config in configs.items():
        model = {
            k: v
            for k, v in config["model"].items()
            if k not in ("_target_", "self_attention", "cross_attention", "in_channels", "num_classes")
        }
        case = dict(
            variant=variant,
            size=config["data"]["image_size"],
            batch=config["data"]["batch_size"],
            base_channels=config["model"]["base_channels"],
            amp=amp,
            model=model,
            channels_last=config["module"].get("channels_last", False),
        )  # the run's memory format
        steps[variant] = build_step(case, device)[0]
    times = time_interleaved(steps, repeats, device)
    return {v: configs[v]["data"]["batch_size"] / t for v, t in times.items()}


def workers(data: dict) -> str:
    """The run's loader workers: the setting, and what ``auto`` chose on this machine."""
    value = data["num_workers"]
    return f"{value} ({resolve_num_workers(value, bool(data.get('cache')))})" if value == "auto" else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="pets_binary")
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="timed epochs, after one warm-up epoch (4: figures in one of them, as in 4 of the main job's 20)",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=15, help="model-only steps per ablation (median)")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for train.py")
    parser.add_argument("--workdir", default=str(REPO_ROOT / "logs" / "pipeline"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.experiment != "smoke" and not os.environ.get("SEGATTN_DATA_DIR"):
        raise SystemExit("set SEGATTN_DATA_DIR to the folder holding the data (e.g. ../shared/data)")
    device = resolve_device(args.device)
    workdir = Path(args.workdir) / time.strftime("%Y-%m-%d_%H-%M-%S")
    workdir.mkdir(parents=True, exist_ok=True)
    amp = "bf16" if args.device == "cuda" else None  # trainer=gpu trains in bf16 mixed precision
    loops, model = {}, {}
    for v in args.variants:
        # Each model-only step is timed right after its own loop: on a shared machine the speed
        # drifts over minutes, and the ratio should compare the two under the same conditions.
        loops[v] = end_to_end(v, args, workdir)
        model.update(model_only({v: loops[v]["config"]}, device, amp, args.repeats))
    rows = []
    for v, r in loops.items():
        loop = r["images"] / r["seconds"]
        phases = " / ".join(f"{r['phases'][k]:.1f}" for k in ("train", "validation", "after validation"))
        rows.append(
            [
                v,
                r["epochs"],
                r["images"],
                f"{r['seconds']:.1f}",
                phases,
                f"{loop:.1f}",
                f"{model[v]:.1f}",
                f"{loop / model[v]:.0%}",
            ]
        )
    config = next(iter(loops.values()))["config"]
    header = [
        "model",
        "timed epochs",
        "images",
        "seconds",
        "train / validation / after s",
        "end-to-end img/s",
        "model-only img/s",
        "end-to-end / model",
    ]
    text = [
        f"Machine: {machine_line(device)}",
        f"experiment={args.experiment}: {config['data']['image_size']} px, batch {config['data']['batch_size']}, "
        f"base channels {config['model']['base_channels']}, {workers(config['data'])} loader workers, "
        f"cache {config['data'].get('cache')}; overrides: {' '.join(args.override) or 'none'}. Runs: {workdir}",
        "",
        markdown_table(header, rows),
    ]
    emit("\n".join(text), args.output)


if __name__ == "__main__":
    main()

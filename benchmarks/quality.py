"""Segmentation quality of the four ablations, trained with the same budget and evaluated held out.

Run from the repository root:  python benchmarks/quality.py [--output FILE]

For each dataset (Oxford-IIIT Pet binary, ISBI-2012, from ``$SEGATTN_DATA_DIR``) and each ablation
(plain U-Net, +MHSA, +MHCA, both) this runs ``train.py`` with the same seed, epochs, image size
and batch size, then ``evaluate.py`` on the held-out split of that dataset (Oxford: the official
test list; ISBI-2012: the held-out labelled slices) with the best checkpoint by ``val/dice``, and
prints a Markdown table of Dice and IoU (dataset-level and per-image; definitions in
``segattn/training/metrics.py``), parameters and training time. Every number comes from the
``metrics.json`` files and checkpoints this run wrote, which stay under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import REPO_ROOT, emit, machine_line, markdown_table

ABLATIONS = {
    "plain U-Net": (False, False),
    "+MHSA": (True, False),
    "+MHCA": (False, True),
    "MHSA+MHCA": (True, True),
}
DATASETS = {
    "pets": {"experiment": "pets_binary", "label": "Oxford-IIIT Pet (binary), test list"},
    "isbi": {"experiment": "isbi2012", "label": "ISBI-2012 (membrane), held-out slices"},
    "smoke": {"experiment": "smoke", "label": "generated shapes (smoke)"},
}


def run(command: list[str], log: Path) -> float:
    """Run a command from the repository root, log its output, return its wall time in seconds."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(command, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {proc.returncode}; see {log}")
    return time.perf_counter() - start


def train_and_evaluate(dataset: str, name: str, args: argparse.Namespace, workdir: Path) -> dict:
    self_attention, cross_attention = ABLATIONS[name]
    run_dir = workdir / dataset / name.replace(" ", "_").replace("+", "plus_")
    overrides = [
        f"experiment={DATASETS[dataset]['experiment']}",
        f"model.self_attention={str(self_attention).lower()}",
        f"model.cross_attention={str(cross_attention).lower()}",
        f"seed={args.seed}",
        f"trainer.max_epochs={args.isbi_epochs if dataset == 'isbi' else args.epochs}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"model.base_channels={args.base_channels}",
        "callbacks.attention_images=null",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    if args.max_samples:
        overrides.append(f"data.max_samples={args.max_samples}")
    seconds = run([sys.executable, "train.py", *overrides], workdir / f"{dataset}-{run_dir.name}-train.log")
    best = run_dir / "checkpoints" / "best.ckpt"
    run([sys.executable, "evaluate.py", f"ckpt_path={best}", f"hydra.run.dir={run_dir / 'eval'}"], workdir / f"{dataset}-{run_dir.name}-eval.log")
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    params = sum(v.numel() for k, v in state.items() if k.startswith("net.") and v.is_floating_point() and "running_" not in k)
    return {"metrics": metrics, "seconds": seconds, "params": params}


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["pets", "isbi"], choices=sorted(DATASETS))
    parser.add_argument("--epochs", type=int, default=10, help="epochs on Oxford-IIIT Pet (270 training images)")
    parser.add_argument("--isbi-epochs", type=int, default=50, help="epochs on ISBI-2012 (18 training slices)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-samples", type=int, default=None, help="cap per split (quick runs)")
    parser.add_argument("--workdir", default=str(REPO_ROOT / "logs" / "quality"))
    parser.add_argument("--output", default=None)
    parser.add_argument("--smoke", action="store_true", help="generated data, 1 epoch, tiny model: checks the script works")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.epochs, args.image_size, args.batch_size, args.base_channels = ["smoke"], 1, 32, 4, 8
    if any(d != "smoke" for d in args.datasets) and not os.environ.get("SEGATTN_DATA_DIR"):
        raise SystemExit("set SEGATTN_DATA_DIR to the folder holding oxford-pets/ and isbi2012/ (e.g. ../shared/data)")
    workdir = Path(args.workdir) / time.strftime("%Y-%m-%d_%H-%M-%S")
    workdir.mkdir(parents=True, exist_ok=True)

    rows = []
    for dataset in args.datasets:
        for name in ABLATIONS:
            result = train_and_evaluate(dataset, name, args, workdir)
            m = result["metrics"]
            rows.append([
                DATASETS[dataset]["label"], name, f"{result['params']:,}", m["num_images"],
                fmt(m["dice"]["mean"]), fmt(m["iou"]["mean"]), fmt(m["dice"]["per_image_mean"]), fmt(m["iou"]["per_image_mean"]),
                f"{result['seconds']:.0f}",
            ])
    header = ["dataset, split", "model", "parameters", "images", "Dice", "IoU", "Dice per image", "IoU per image", "train s"]
    budget = (
        f"Budget per run: {args.epochs} epochs (ISBI-2012: {args.isbi_epochs}), image size {args.image_size}, batch size {args.batch_size}, "
        f"base channels {args.base_channels}, seed {args.seed}; best checkpoint by val/dice. Dice/IoU: dataset-level "
        "over the foreground class; per image: mean over images (segattn/training/metrics.py)."
    )
    emit("\n".join([f"Machine: {machine_line(torch.device('cpu'))}", budget, f"Run directories: {workdir}", "", markdown_table(header, rows)]), args.output)


if __name__ == "__main__":
    main()

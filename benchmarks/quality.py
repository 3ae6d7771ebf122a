"""Segmentation quality of the ablations against a minimal reference recipe, as a mean over seeds.

Run from the repository root:
    python benchmarks/quality.py --seeds 0 1 2 [--datasets pets isbi] [--models reference plain full] [--output FILE]
    # GlaS under experiment=glas, also scored with test-time symmetries; reference, +MHSA, +MHCA one seed
    python benchmarks/quality.py --datasets glas --tta --models reference plain mhsa mhca full \
        --first-seed-only reference mhsa mhca
    python benchmarks/quality.py --device cuda --common data.image_size=256 trainer.max_epochs=50   # GPU rows

For each dataset (Oxford-IIIT Pet binary at 128 px / 20 epochs, ISBI-2012 at 256 px / 40 epochs,
both batch 16; GlaS glands at 224 px under ``experiment=glas``; all from ``$SEGATTN_DATA_DIR``;
budgets from ``configs/experiment``), each model and each seed, this runs ``train.py`` and then
``evaluate.py`` with the checkpoint of the best ``val/dice`` (chosen on the validation images) on
the held-out split (Oxford: the official test list; ISBI-2012: slices 24–29; GlaS: the official
80 test images), and prints a Markdown table of mean ± std over the seeds. Models:

- ``reference``: the minimal recipe of a 100-line U-Net, built from segattn's plain model and
  configs: horizontal flips only, AdamW (weight decay 1e-4 on every parameter) under a one-cycle
  schedule peaking at 3e-3, cross-entropy + soft Dice of the foreground, antialiased resizing,
  the epochs of the dataset's experiment, no weight averaging or early stopping.
- ``plain``, ``mhsa``, ``mhca``, ``full``: segattn's defaults (``make train``) with the attention
  switches of each ablation.

Settings are chosen with ``--split val`` (the validation images carved from the training data),
never on the held-out split. ``--override KEY=VALUE`` adds Hydra overrides to every non-reference
run (e.g. ``model.gate_channels=one``). For models with attention the table also gives what
``evaluate.py`` measures of it (``segattn/metrics/attention.py``): the MHCA gate contrast
per level (mean gate on foreground − background, level 0 = full resolution), the MHSA border
ratio (attention that foreground queries give the border cells over their share: the sink; 1 =
none) and the normalised entropy of each MHSA head. ``--tta`` also scores every checkpoint with
the test-time symmetries it was trained with (``inference.tta=true``). Every number comes from the
``metrics.json`` files this run wrote, which stay under ``--workdir``; the table is rewritten after
every run, so a long run that is stopped keeps what it finished, and ``--resume <its folder>``
reuses its finished runs (e.g. to score the runs of a ``--split val`` invocation on the test split,
or to add seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import REPO_ROOT, emit, machine_line, markdown_table

REFERENCE = [
    "model.self_attention=false",
    "model.cross_attention=false",
    "model.deep_supervision=0",
    "data.augment=light",
    "data.vertical_flip=false",
    "data.rotate90=false",
    "module.loss=ce+dice",
    "module.include_background=false",
    "module.scheduler=onecycle",
    "module.lr=3e-3",
    "module.weight_decay=1e-4",
    "module.decay_norm_and_bias=true",
    "callbacks=[default]",
]
MODELS = {
    "reference": ("minimal reference recipe (plain)", REFERENCE),
    "plain": ("segattn plain U-Net", ["model.self_attention=false", "model.cross_attention=false"]),
    "mhsa": ("segattn +MHSA", ["model.self_attention=true", "model.cross_attention=false"]),
    "mhca": ("segattn +MHCA", ["model.self_attention=false", "model.cross_attention=true"]),
    "full": ("segattn MHSA+MHCA", ["model.self_attention=true", "model.cross_attention=true"]),
}
DATASETS = {
    "pets": {"experiment": "pets_binary", "label": "Oxford-IIIT Pet (binary), 128 px, 20 epochs"},
    "isbi": {"experiment": "isbi2012", "label": "ISBI-2012 (membrane), 256 px, 40 epochs"},
    "glas": {"experiment": "glas", "label": "GlaS (glands), 224 px, experiment=glas"},
    "smoke": {"experiment": "smoke", "label": "generated shapes (smoke)"},
}


def run(command: list[str], log: Path) -> float:
    """Run a command from the repository root, log its output, return its wall time in seconds."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            command, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {proc.returncode}; see {log}")
    return time.perf_counter() - start


def train_and_evaluate(dataset: str, model: str, seed: int, args: argparse.Namespace, workdir: Path) -> dict:
    run_dir = workdir / dataset / model / f"seed{seed}"
    overrides = [
        f"experiment={DATASETS[dataset]['experiment']}",
        *args.common,  # before the rows' own settings, which win on a clash
        *MODELS[model][1],
        *([] if model == "reference" else args.override),
        *(["trainer=gpu"] if args.device == "cuda" else []),
        f"seed={seed}",
        "callbacks.attention_images=null",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    if args.smoke:
        overrides += ["trainer.max_epochs=1", "data.image_size=32", "model.base_channels=8"]
    if args.max_samples:
        overrides.append(f"data.max_samples={args.max_samples}")
    name = f"{dataset}-{model}-seed{seed}"
    best = run_dir / "checkpoints" / "best.ckpt"
    timing = run_dir / "train_seconds.txt"
    if finished(run_dir) and timing.is_file():  # --resume: a run finished by an earlier invocation
        seconds = float(timing.read_text())
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run starts again from scratch
        seconds = run([sys.executable, "train.py", *overrides], workdir / f"{name}-train.log")
        timing.write_text(f"{seconds:.1f}\n")
    metrics = evaluate(
        best, run_dir / f"eval-{args.split}-best", args.split, [], workdir / f"{name}-eval-{args.split}.log"
    )
    tta = (
        evaluate(
            best,
            run_dir / f"eval-{args.split}-best-tta",
            args.split,
            ["inference.tta=true"],
            workdir / f"{name}-eval-{args.split}-tta.log",
        )
        if args.tta
        else None
    )
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    params = sum(
        v.numel() for k, v in state.items() if k.startswith("net.") and v.is_floating_point() and "running_" not in k
    )
    return {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "metrics": metrics,
        "tta": tta,
        "seconds": seconds,
        "params": params,
        "epochs": epochs_run(run_dir),
    }


def evaluate(checkpoint: Path, eval_dir: Path, split: str, overrides: list[str], log: Path) -> dict:
    """``evaluate.py`` on ``split`` (once: a folder with metrics.json is reused); its metrics."""
    if not (eval_dir / "metrics.json").is_file():
        shutil.rmtree(eval_dir, ignore_errors=True)  # an interrupted evaluation runs again
        run(
            [
                sys.executable,
                "evaluate.py",
                f"ckpt_path={checkpoint}",
                f"split={split}",
                *overrides,
                f"hydra.run.dir={eval_dir}",
            ],
            log,
        )
    return json.loads((eval_dir / "metrics.json").read_text())


def epochs_run(run_dir: Path) -> int | None:
    """The epochs a run trained (fewer than trainer.max_epochs when early stopping ended it)."""
    log = run_dir / "train.log"
    found = re.findall(r"Finished after (\d+) epochs", log.read_text()) if log.is_file() else []
    return int(found[-1]) if found else None


def finished(run_dir: Path) -> bool:
    """A training run that ran to its end (train_seconds.txt is written after it exits cleanly)."""
    return (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "train_seconds.txt").is_file()


def mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def mean_list(lists: list[list[float | None]]) -> list[float | None]:
    """Element-wise mean of equally long lists (None where any is None)."""
    out = []
    for items in zip(*lists):
        out.append(None if any(v is None for v in items) else statistics.mean(items))
    return out


def report(results: list[dict], args: argparse.Namespace, workdir: Path) -> str:
    rows = []
    for dataset in args.datasets:
        plain = [
            r["metrics"]["dice"]["per_image_mean"] for r in results if r["dataset"] == dataset and r["model"] == "plain"
        ]
        for model in args.models:
            runs = [r for r in results if r["dataset"] == dataset and r["model"] == model]
            if not runs:
                continue
            per_image = [r["metrics"]["dice"]["per_image_mean"] for r in runs]
            delta = f"{statistics.mean(per_image) - statistics.mean(plain):+.4f}" if plain and model != "plain" else "–"
            attention = [r["metrics"].get("attention", {}) for r in runs]
            contrast = (
                mean_list([a["gate_contrast"] for a in attention])
                if all("gate_contrast" in a for a in attention)
                else None
            )
            entropy = (
                mean_list([a["mhsa_head_entropy"] for a in attention])
                if all("mhsa_head_entropy" in a for a in attention)
                else None
            )
            border = [a.get("mhsa_border_ratio") for a in attention]
            row = [
                DATASETS[dataset]["label"] + (f", changed by {' '.join(args.common)}" if args.common else ""),
                MODELS[model][0],
                len(runs),
                f"{runs[0]['params']:,}",
                mean_std(per_image),
                mean_std([r["metrics"]["iou"]["per_image_mean"] for r in runs]),
                mean_std([r["metrics"]["dice"]["mean"] for r in runs]),
                mean_std([r["metrics"]["iou"]["mean"] for r in runs]),
            ]
            if args.tta:
                row.append(mean_std([r["tta"]["dice"]["per_image_mean"] for r in runs if r.get("tta")]))
            row += [
                delta,
                "–" if contrast is None else " / ".join("n/a" if c is None else f"{c:+.3f}" for c in contrast),
                "–" if None in border else f"{statistics.mean(border):.2f}",
                "–"
                if entropy is None
                else f"{' '.join(f'{e:.2f}' for e in entropy)} ({sum(e < 0.9 for e in entropy)}/{len(entropy)} < 0.9)",
                f"{statistics.mean(r['seconds'] for r in runs):.0f}",
                "–" if None in [r.get("epochs") for r in runs] else " / ".join(str(r["epochs"]) for r in runs),
            ]
            rows.append(row)
    header = [
        "dataset",
        "model",
        "seeds",
        "parameters",
        f"Dice per image ({args.split})",
        "IoU per image",
        "Dice (dataset)",
        "IoU (dataset)",
        *(["Dice per image, TTA"] if args.tta else []),
        "Δ Dice per image vs plain",
        "gate contrast, levels 0/1/2/3",
        "MHSA border ratio",
        "MHSA head entropy / log N",
        "train s",
        "epochs",
    ]
    seeds = ", ".join(str(s) for s in args.seeds)
    split = "held-out test split" if args.split == "test" else "validation split (for choosing settings)"
    text = [
        f"Machine: {machine_line(torch.device(args.device))}"
        + (" (trainer=gpu: bf16-mixed)" if args.device == "cuda" else ""),
        f"Seeds {seeds}; best checkpoint (by val/dice) of each run scored on the {split}; mean ± sample std "
        "over seeds. Per image: score of each image, mean over images; dataset: TP/FP/FN summed over the split; "
        "both over the foreground class (segattn/metrics/scores.py)."
        + (" TTA: averaged over the test-time symmetries the run trained with." if args.tta else ""),
        f"Overrides of the segattn rows: {' '.join(args.override) or 'none'}; of every row: "
        f"{' '.join(args.common) or 'none'}. Run directories: {workdir}",
        "",
        markdown_table(header, rows),
    ]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["pets", "isbi"], choices=sorted(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--split", default="test", choices=["test", "val"], help="val to choose settings; test for the final table"
    )
    parser.add_argument(
        "--override", nargs="*", default=[], help="Hydra overrides for the segattn (non-reference) rows"
    )
    parser.add_argument(
        "--common",
        nargs="*",
        default=[],
        help="Hydra overrides for every row, the reference included (e.g. data.image_size=256 trainer.max_epochs=50); "
        "a row's own settings and --override win over them",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: every run with trainer=gpu (bf16-mixed)"
    )
    parser.add_argument("--max-samples", type=int, default=None, help="cap per split (quick runs)")
    parser.add_argument(
        "--first-seed-only",
        nargs="*",
        default=[],
        choices=list(MODELS),
        help="models trained with the first seed only (e.g. the single-attention ablations)",
    )
    parser.add_argument(
        "--tta", action="store_true", help="also score each checkpoint with test-time symmetries (inference.tta=true)"
    )
    parser.add_argument(
        "--workdir", default=str(REPO_ROOT / "logs" / "quality"), help="a timestamped folder is made in it"
    )
    parser.add_argument(
        "--resume", default=None, help="a run folder of an earlier invocation: its finished runs are reused"
    )
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--smoke", action="store_true", help="generated data, 1 epoch, tiny model: checks the script works"
    )
    args = parser.parse_args()
    if args.smoke:
        args.datasets = ["smoke"]
    if any(d != "smoke" for d in args.datasets) and not os.environ.get("SEGATTN_DATA_DIR"):
        raise SystemExit(
            "set SEGATTN_DATA_DIR to the folder holding oxford-pets/, isbi2012/ and glas/ (e.g. ../shared/data)"
        )
    workdir = Path(args.resume) if args.resume else Path(args.workdir) / time.strftime("%Y-%m-%d_%H-%M-%S")
    workdir.mkdir(parents=True, exist_ok=True)

    results = []
    # Seeds outermost, so that a stopped run has every model at the seeds it finished.
    for seed in args.seeds:
        for dataset in args.datasets:
            for model in args.models:
                if model in args.first_seed_only and seed != args.seeds[0]:
                    continue
                results.append(train_and_evaluate(dataset, model, seed, args, workdir))
                (workdir / "results.json").write_text(json.dumps(results, indent=1))
                text = report(results, args, workdir)
                if args.output:
                    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.output).write_text(text + "\n")
    emit(report(results, args, workdir), args.output)


if __name__ == "__main__":
    main()

"""Native-scale pipelines: resize vs patch training + sliding window on ISBI-2012, and the memory
of predicting a large image by sliding window.

Run from the repository root:
    python benchmarks/large_images.py --seeds 0 1 2 [--output FILE]      # ISBI-2012 (SEGATTN_DATA_DIR)
    python benchmarks/large_images.py --memory-only                       # 2000×1500 and 4000×3000

Quality: for each seed, ``experiment=isbi2012`` (slices resized to 256²) and
``experiment=isbi2012_patches`` (random 256² patches of the 512² slices, sliding-window
validation) with 1 and with 4 patches per slice per epoch (4: an epoch covers each slice's area
once, as an epoch of resized slices does; 3× the steps at batch 16) train for the same epochs and
batch; the last checkpoints are scored on slices 24–29
**at native 512×512** (``evaluate.py resolution=native``): the resize pipeline's probabilities are
upsampled to 512², the patch model slides its window (overlap 0.5, Gaussian weights), without
flips, with the flips it was trained with (``inference.tta=true``: horizontal, as ISBI-2012 is
trained without vertical flips) and with all four (``inference.tta_vertical=true``). Mean ± std
over seeds. ``--resume <run folder>`` reuses the trainings and evaluations an earlier invocation
finished (e.g. to add a row); a training time it did not record shows as "–".

Memory: ``segattn-predict``'s code path (``predict_probabilities`` in sliding-window mode) on a
random image with an untrained model (quality does not matter here), one fresh process per size,
peak RSS above the process's footprint before the call; the map of probabilities is on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import MIB, REPO_ROOT, PeakMemory, emit, machine_line, markdown_table, measure_in_subprocess
from benchmarks.quality import run
from segattn.inference import window_starts

#: Training run (its folder under the run directory) → (experiment, training overrides).
TRAININGS = {
    "isbi2012": ("isbi2012", []),
    "isbi2012_patches": ("isbi2012_patches", ["data.patches_per_image=1"]),
    "isbi2012_patches4": ("isbi2012_patches", ["data.patches_per_image=4"]),
}
FLIPS_AS_TRAINED = ["inference.tta=true"]  # horizontal: ISBI-2012 trains without vertical flips
FOUR_FLIPS = ["inference.tta=true", "inference.tta_vertical=true"]
#: Row name → (training run, evaluation overrides, evaluation folder name).
PIPELINES = {
    "resize to 256²": ("isbi2012", [], "eval-native"),
    "patches 256² (1 per slice per epoch) + sliding window": ("isbi2012_patches", [], "eval-native"),
    "patches 256² (1 per slice) + sliding window + flips as trained (horizontal)": (
        "isbi2012_patches",
        FLIPS_AS_TRAINED,
        "eval-native-tta-trained",
    ),
    "patches 256² (1 per slice) + sliding window + 4 flips": ("isbi2012_patches", FOUR_FLIPS, "eval-native-tta4"),
    "patches 256² (4 per slice per epoch) + sliding window": ("isbi2012_patches4", [], "eval-native"),
    "patches 256² (4 per slice) + sliding window + flips as trained (horizontal)": (
        "isbi2012_patches4",
        FLIPS_AS_TRAINED,
        "eval-native-tta-trained",
    ),
}
MEMORY_SIZES = [(1500, 2000), (3000, 4000)]


def quality_rows(args: argparse.Namespace, workdir: Path) -> list[list[object]]:
    scores: dict[str, list[float]] = {name: [] for name in PIPELINES}
    seconds: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for seed in args.seeds:
        trained: dict[str, tuple[Path, float]] = {}
        for name, (training, eval_extra, eval_name) in PIPELINES.items():
            experiment, train_extra = TRAININGS[training]
            run_dir = workdir / training / f"seed{seed}"
            timing = run_dir / "train_seconds.txt"  # written once train.py exited cleanly
            if training not in trained and timing.is_file():  # finished by an earlier invocation (--resume)
                trained[training] = (run_dir, float(timing.read_text()))
            if training not in trained:
                overrides = [
                    f"experiment={experiment}",
                    f"seed={seed}",
                    "callbacks.attention_images=null",
                    "trainer.enable_progress_bar=false",
                    f"hydra.run.dir={run_dir}",
                    *train_extra,
                    *args.override,
                ]
                if args.epochs:
                    overrides.append(f"trainer.max_epochs={args.epochs}")
                trained[training] = (
                    run_dir,
                    run([sys.executable, "train.py", *overrides], workdir / f"{training}-seed{seed}-train.log"),
                )
                timing.write_text(f"{trained[training][1]:.1f}")
            out = run_dir / eval_name
            if not (out / "metrics.json").is_file():
                run(
                    [
                        sys.executable,
                        "evaluate.py",
                        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                        "resolution=native",
                        f"hydra.run.dir={out}",
                        *eval_extra,
                    ],
                    workdir / f"{training}-seed{seed}-{out.name}.log",
                )
            scores[name].append(json.loads((out / "metrics.json").read_text())["dice"]["mean"])
            seconds[name].append(trained[training][1])
    base = statistics.mean(scores["resize to 256²"])
    rows = []
    for name, values in scores.items():
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        rows.append(
            [
                name,
                len(values),
                f"{statistics.mean(values):.4f}{spread}",
                f"{statistics.mean(values) - base:+.4f}",
                "–" if any(s != s for s in seconds[name]) else f"{statistics.mean(seconds[name]):.0f}",
            ]
        )
    return rows


def memory_case(case: dict) -> None:
    """Child process: peak memory of one sliding-window prediction of a random image."""
    from segattn.inference import InferenceSettings, predict_probabilities
    from segattn.models import UNetAttention

    torch.manual_seed(0)
    model = UNetAttention(base_channels=case["base_channels"], qk_norm=case["qk_norm"]).eval()
    h, w = case["size"]
    image = torch.randn(1, 3, h, w)
    settings = InferenceSettings(mode="sliding_window", batch_size=case["batch_size"])
    start = time.perf_counter()
    with torch.inference_mode(), PeakMemory(torch.device("cpu")) as peak:
        probs = predict_probabilities(model, image, 2, settings, window=case["window"], multiple=16)
    print(json.dumps({"peak": peak.peak, "seconds": time.perf_counter() - start, "shape": list(probs.shape)}))


def memory_rows(args: argparse.Namespace) -> list[list[object]]:
    rows = []
    for h, w in MEMORY_SIZES:
        case = {
            "size": [h, w],
            "window": args.window,
            "batch_size": args.window_batch,
            "base_channels": args.base_channels,
            "qk_norm": not args.no_qk_norm,
        }
        result = measure_in_subprocess(Path(__file__), case)
        windows = len(window_starts(h, args.window, 0.5)) * len(window_starts(w, args.window, 0.5))
        map_mib = 2 * h * w * 4 / MIB
        rows.append(
            [f"{w}×{h}", f"{windows}", f"{map_mib:.0f}", f"{result['peak'] / MIB:,.0f}", f"{result['seconds']:.0f}"]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the experiments' 40 epochs (quick runs)")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="quality rows only")
    parser.add_argument(
        "--resume", default=None, help="a run folder of an earlier invocation: its finished runs are reused"
    )
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every training run")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--window-batch", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument(
        "--no-qk-norm", action="store_true", help="memory rows: the model without query/key normalisation"
    )
    parser.add_argument("--workdir", default=str(REPO_ROOT / "logs" / "large_images"))
    parser.add_argument("--output", default=None)
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        memory_case(json.loads(args.memory_case))
        return
    sections = [f"Machine: {machine_line(torch.device('cpu'))}"]
    if not args.memory_only:
        if not os.environ.get("SEGATTN_DATA_DIR"):
            raise SystemExit("set SEGATTN_DATA_DIR to the folder holding isbi2012/ (e.g. ../shared/data)")
        workdir = Path(args.resume) if args.resume else Path(args.workdir) / time.strftime("%Y-%m-%d_%H-%M-%S")
        workdir.mkdir(parents=True, exist_ok=True)
        header = ["ISBI-2012 pipeline", "seeds", "Dice at native 512² (slices 24–29)", "Δ vs resize", "train s"]
        sections += [
            f"Quality (run directories: {workdir}):",
            "",
            markdown_table(header, quality_rows(args, workdir)),
            "",
        ]
    if args.no_memory:
        emit("\n".join(sections), args.output)
        return
    header = ["image (W×H)", "windows", "probability map MiB", "peak MiB above start", "seconds"]
    sections += [
        f"Sliding-window prediction: window {args.window}, overlap 0.5, {args.window_batch} windows per pass, base "
        f"channels {args.base_channels}, CPU, one process per size:",
        "",
        markdown_table(header, memory_rows(args)),
    ]
    emit("\n".join(sections), args.output)


if __name__ == "__main__":
    main()

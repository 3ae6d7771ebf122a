"""Training throughput and peak memory of the four ablations of the U-Net Transformer.

Run from the repository root:  python benchmarks/model.py [--device cuda] [--amp bf16] [--output FILE]
(``python -m benchmarks.model`` works too).

The ablations share every width (``--base-channels``, depth 4, the attention settings of
``configs/model/unet_attention.yaml``, what ``train.py`` builds) and
differ only in the attention switches: plain U-Net, +MHSA (bottleneck self-attention), +MHCA
(cross-attention gates on the skips), and both (the full U-Net Transformer). Each step is what
training does: forward, cross-entropy, backward, AdamW step, on random images and labels. All
ablations run at ``--sizes``; the plain U-Net and the full model also at ``--full-sizes``, so
the full model's cost at large images can still be compared with the plain U-Net's. Steps of the
models at one size take turns within every repeat (one warm-up each), so load from other users
of the machine affects them alike; the ratios "× plain" are step time and peak memory divided
by the plain U-Net's at the same size in the same run.

Peak memory is measured in a fresh process per case: after one warm-up step (so AdamW's state
exists), the memory needed by one more step above what the process held before it, i.e.
activations, gradients and temporaries, not weights and optimiser state (see ``params M``).
"MiB/MP" divides it by the megapixels in the batch: a constant column means memory grows linearly
with pixels.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``segattn`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
import yaml

from benchmarks.common import (
    MIB,
    PeakMemory,
    autocast,
    emit,
    machine_line,
    markdown_table,
    measure_in_subprocess,
    reference_gflops,
    resolve_device,
    time_interleaved,
)
from segattn.models import UNetAttention
from segattn.training.module import COMPILE_MODES, CUDA_GRAPH_MODES, adamw_implementation, compile_mode_of

# name → (self_attention, cross_attention)
VARIANTS = {"plain U-Net": (False, False), "+MHSA": (True, False), "+MHCA": (False, True), "MHSA+MHCA": (True, True)}


#: Settings each row fixes itself: rows differ in these only as the benchmark says.
FIXED = {
    "base_channels": "--base-channels",
    "self_attention": "the row's ablation",
    "cross_attention": "the row's ablation",
    "depth": "depth 4 in every row",
}


def config_defaults() -> dict:
    """The attention settings of ``configs/model/unet_attention.yaml`` (what ``train.py`` builds),
    without the keys each row sets itself: the benchmark measures the model users train."""
    config = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs" / "model" / "unet_attention.yaml").read_text()
    )
    return {k: v for k, v in config.items() if k not in FIXED and k not in ("_target_", "in_channels", "num_classes")}


def default_batch(size: int) -> int:
    """4 images at 128 px, halving as the side doubles (2 at 256), at least 1 (512 and 1024 px)."""
    return max(1, 4 * 128 // size)


def build_model(case: dict) -> UNetAttention:
    """The case's U-Net: its ablation's switches, its widths, and any other UNetAttention settings
    under ``case["model"]`` (benchmarks/pipeline.py: the run's)."""
    sa, ca = VARIANTS[case["variant"]]
    return UNetAttention(
        **{
            **(case.get("model") or {}),
            "base_channels": case["base_channels"],
            "self_attention": sa,
            "cross_attention": ca,
        }
    )


def build_step(case: dict, device: torch.device):
    """Model, AdamW and a random batch; returns (one training step, parameter count)."""
    torch.manual_seed(0)
    model = build_model(case).to(device).train()
    layout = torch.channels_last if case.get("channels_last") else torch.contiguous_format
    model = model.to(memory_format=layout)
    mode = compile_mode_of(case.get("compile", False))
    if mode:
        model = torch.compile(model, mode=mode)  # compiled on the warm-up steps
    # The AdamW kernel the training loop picks (fused in 32-bit training, foreach under mixed precision).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, **adamw_implementation("bf16-mixed" if case["amp"] else "32-true")
    )
    b, s = case["batch"], case["size"]
    x = torch.randn(b, 3, s, s, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 2, (b, s, s), device=device)

    def step() -> None:
        if mode in CUDA_GRAPH_MODES:  # a new step begins (as in training)
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device, case["amp"]):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # gradients are freed, so each step allocates its own

    return step, sum(p.numel() for p in model.parameters())


def parameter_count(case: dict) -> int:
    """Parameters of the case's model (built on the CPU, not run)."""
    return sum(p.numel() for p in build_model(case).parameters())


def number(value: float, spec: str) -> str:
    """``value`` formatted, or "–" when it was not measured (NaN)."""
    return "–" if math.isnan(value) else format(value, spec)


def warmup_steps(compile: bool | str) -> int:
    """Steps before timing or measuring: 1, or 3 with ``torch.compile`` (it may recompile on the
    first calls: guards, backward), or 5 with CUDA graphs (recorded after warm-up runs)."""
    mode = compile_mode_of(compile)
    return 1 if mode is None else 5 if mode in CUDA_GRAPH_MODES else 3


def child_step(case: dict) -> tuple:
    """In a child process: the case's threads, device and training step."""
    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    return build_step(case, device)[0], device


def time_case(case: dict) -> None:
    """Child process (``--isolate``): the warm-up steps, then the median seconds of
    ``case["repeats"]`` timed steps; prints JSON."""
    step, device = child_step(case)
    seconds = time_interleaved(
        {"step": step}, case["repeats"], device, warmup=warmup_steps(case.get("compile", False))
    )["step"]
    print(json.dumps({"seconds": seconds}))


def time_isolated(cases: dict[str, dict], repeats: int, rounds: int, script: Path) -> dict[str, float]:
    """Median seconds per step of each case, each timed in its own process: ``rounds`` rounds in
    which the cases take turns, ``repeats`` steps each; the median of the rounds' medians.

    Training runs one model per process. Side by side in one process, at 256 px and batch 16 on
    the CPU, the plain U-Net's step ran faster and the attention model's slower than each does
    alone (1.62× against about 1.3×; BENCHMARKS.md)."""
    samples: dict[str, list[float]] = {v: [] for v in cases}
    for _ in range(rounds):
        for v, case in cases.items():
            samples[v].append(
                measure_in_subprocess(script, {**case, "repeats": repeats}, flag="--time-case")["seconds"]
            )
    return {v: statistics.median(values) for v, values in samples.items()}


def memory_case(case: dict) -> None:
    """Child process: the warm-up steps, then the peak memory of one more; prints JSON."""
    step, device = child_step(case)
    for _ in range(warmup_steps(case.get("compile", False))):
        step()
    with PeakMemory(device) as peak:
        step()
    print(json.dumps({"peak_bytes": peak.peak}))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512], help="image sides for all four ablations")
    p.add_argument(
        "--full-sizes",
        type=int,
        nargs="*",
        default=[1024],
        help="image sides for the plain U-Net and the full model only",
    )
    p.add_argument(
        "--batch", type=int, default=None, help="batch size at every size (default: 4 at 128 px, 2 at 256, 1 above)"
    )
    p.add_argument("--base-channels", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed steps per case (median reported), after 1 warm-up")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", choices=("bf16",), default=None, help="autocast dtype for forward and loss (bf16)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--channels-last", action="store_true", help="model and inputs in channels_last memory format")
    p.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=False,
        choices=COMPILE_MODES,
        help=(
            "torch.compile the model, in this mode (default: 'default'; 'reduce-overhead' adds CUDA graphs on a GPU); "
            "the warm-up steps compile it"
        ),
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="ablations at --sizes (plain U-Net is always run)",
    )
    p.add_argument("--no-memory", action="store_true", help="time only (no peak-memory child processes)")
    p.add_argument(
        "--smoke", action="store_true", help="32 px, batch 1 (unless --batch), no full sizes, 1 repeat: a quick check"
    )
    p.add_argument(
        "--model",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="UNetAttention settings for every row, e.g. gate_channels=one (values read as YAML)",
    )
    p.add_argument(
        "--also",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="add a row: the full model with these settings on top of --model, e.g. cross_attention_levels=[1,2,3]",
    )
    p.add_argument("--output", help="also write the report to this file")
    p.add_argument(
        "--isolate",
        type=int,
        default=0,
        metavar="ROUNDS",
        help=(
            "time each case in its own process, the cases taking turns for ROUNDS rounds "
            "(default 0: all cases in this process)"
        ),
    )
    p.add_argument("--memory-case", help=argparse.SUPPRESS)  # internal: run one case in a child process
    p.add_argument("--time-case", help=argparse.SUPPRESS)  # internal: time one case in a child process (--isolate)
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.full_sizes, args.repeats, args.batch = [32], [], 1, args.batch or 1
    args.model, args.also = settings(args.model, "--model"), settings(args.also, "--also")
    return args


def settings(items: list[str], flag: str) -> dict:
    """``["key=value", ...]`` → ``{key: value}``, each value parsed as YAML (``[1,2]``, ``one``, ``0.9``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag}: expected KEY=VALUE, got {item!r}")
        if key in FIXED:
            raise SystemExit(f"{flag}: {key} is set by the benchmark itself ({FIXED[key]}), not by {flag}")
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_case:
        return memory_case(json.loads(args.memory_case))
    if args.time_case:
        return time_case(json.loads(args.time_case))
    device = resolve_device(args.device)
    script = Path(__file__).resolve()
    settings_all = {**config_defaults(), **args.model}  # every row's model settings (read once)
    also = f"MHSA+MHCA, {', '.join(f'{k}={v}' for k, v in args.also.items())}" if args.also else None
    plan = [
        (s, [v for v in VARIANTS if v == "plain U-Net" or v in args.variants] + ([also] if also else []))
        for s in args.sizes
    ]
    plan += [(s, ["plain U-Net", "MHSA+MHCA"]) for s in args.full_sizes if s not in args.sizes]
    warmup = warmup_steps(args.compile)
    gflops_before = reference_gflops(device)
    rows = []
    for size, variants in plan:
        batch = args.batch or default_batch(size)
        cases = {
            v: dict(
                variant="MHSA+MHCA" if v == also else v,
                size=size,
                batch=batch,
                base_channels=args.base_channels,
                device=device.type,
                amp=args.amp,
                threads=args.threads,
                channels_last=args.channels_last,
                compile=args.compile,
                model={**settings_all, **(args.also if v == also else {})},
            )
            for v in variants
        }
        if args.isolate:
            times = time_isolated(cases, args.repeats, args.isolate, script)
            params = {v: parameter_count(c) for v, c in cases.items()}
        else:
            built = {v: build_step(c, device) for v, c in cases.items()}
            times = time_interleaved({v: step for v, (step, _) in built.items()}, args.repeats, device, warmup=warmup)
            params = {v: n for v, (_, n) in built.items()}
            del built
        mem = {
            v: math.nan if args.no_memory else measure_in_subprocess(script, c)["peak_bytes"] / MIB
            for v, c in cases.items()
        }
        megapixels = batch * size * size / 1e6
        for v in variants:
            rows.append(
                [
                    f"{size} px",
                    v,
                    batch,
                    f"{batch / times[v]:.2f}",
                    f"{times[v]:.3f}",
                    f"{times[v] / times['plain U-Net']:.2f}",
                    number(mem[v], ",.0f"),
                    number(mem[v] / mem["plain U-Net"], ".2f"),
                    number(mem[v] / megapixels, ",.0f"),
                    f"{params[v] / 1e6:.2f}",
                ]
            )
        print(f"# done {size} px", file=sys.stderr, flush=True)
    header = [
        "size",
        "model",
        "batch",
        "img/s",
        "step s",
        "time × plain",
        "peak MiB",
        "memory × plain",
        "MiB/MP",
        "params M",
    ]
    amp = f", autocast {args.amp}" if args.amp else ""
    timing_where = (
        f", each case timed in its own process ({args.isolate} rounds taking turns, median of the rounds)"
        if args.isolate
        else ", the cases taking turns in this process"
    )
    report = (
        f"Training step (forward, cross-entropy, backward, AdamW): base_channels {args.base_channels}, depth 4, "
        f"the attention settings of configs/model/unet_attention.yaml ("
        f"{', '.join(f'{k}={v}' for k, v in settings_all.items())}){amp}"
        f"{', channels_last' if args.channels_last else ''}"
        f"{f', torch.compile ({args.compile})' if args.compile else ''}; median of {args.repeats} after {warmup} "
        f"warm-up{timing_where}; peak memory above the step's start, one process per case.\n"
        f"Machine: {machine_line(device)}\n"
        f"Reference 1024² float32 matmul: {gflops_before:.0f} GFLOP/s before the run, "
        f"{reference_gflops(device):.0f} after (a drop means other load on the machine).\n\n"
        + markdown_table(header, rows)
    )
    emit(report, args.output)


if __name__ == "__main__":
    main()

"""Fast (fused) against textbook attention in segattn's MHSA and MHCA modules.

Run from the repository root:  python benchmarks/attention.py [--output FILE]
(``python -m benchmarks.attention`` works too).

"Fast" is the modules' default path, ``F.scaled_dot_product_attention``, which never holds the
N×N score matrix. "Textbook" is the same module instance called with ``need_weights=True``: that
path computes softmax(QKᵀ/√d)·V with the (batch, heads, N, N) weights materialised, exactly as
most tutorials write it. Everything else in the module (projections, norms, positional encoding,
gate) is shared, so the difference between the columns is the attention computation alone.

Each case is a forward and backward pass (loss = output sum) of one module at batch 2,
256 channels, 8 heads. MHSA attends over an h×w map of N = h·w tokens. MHCA gets its token grid
of N cells directly: the coarse feature Y at the grid's resolution (512 channels, as in the U-Net
where the coarser level has twice the channels), the skip S at twice it (256 channels), and
``max_tokens = N`` so the grid is not pooled further.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``segattn`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

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
from segattn.models import MultiHeadCrossAttentionGate, MultiHeadSelfAttention2d

MODULES = ("MHSA", "MHCA")
IMPLS = ("fast", "textbook")


def grid_for(tokens: int) -> tuple[int, int]:
    """The most nearly square h×w grid with h·w = tokens (h ≤ w)."""
    h = math.isqrt(tokens)
    while tokens % h:
        h -= 1
    return h, tokens // h


def build_step(case: dict, device: torch.device):
    """One forward+backward of the case's module; returns a callable taking ``need_weights``."""
    torch.manual_seed(0)
    h, w = grid_for(case["tokens"])
    b, c = case["batch"], case["channels"]
    if case["module"] == "MHSA":
        module = MultiHeadSelfAttention2d(c, case["heads"], qk_norm=case["qk_norm"]).to(device)
        inputs = [torch.randn(b, c, h, w, device=device, requires_grad=True)]
    else:
        # head_dim = channels / heads gives the case's head count; max_tokens = N: no pooling.
        module = MultiHeadCrossAttentionGate(
            c, case["coarse_channels"], head_dim=c // case["heads"], max_tokens=case["tokens"], qk_norm=case["qk_norm"]
        ).to(device)
        inputs = [
            torch.randn(b, c, 2 * h, 2 * w, device=device, requires_grad=True),  # skip S
            torch.randn(b, case["coarse_channels"], h, w, device=device, requires_grad=True),  # coarse Y
        ]

    def step(need_weights: bool) -> None:
        with autocast(device, case["amp"]):
            out = module(*inputs, need_weights=need_weights)[0]
        out.float().sum().backward()
        module.zero_grad(set_to_none=True)
        for t in inputs:
            t.grad = None

    return step


def fast_kernel(step) -> str:
    """Which kernel the fast path gets: "fused", or "math fallback" when no fused one accepts it.

    ``F.scaled_dot_product_attention`` falls back silently to its math path, which materialises
    the N×N scores like the textbook one, when its inputs do not suit a fused kernel (e.g. a last
    dimension with stride ≠ 1). Running one step with only the fused kernels allowed tells which.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3
        return "unknown"
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    try:
        with warnings.catch_warnings(), sdpa_kernel(fused):
            warnings.simplefilter("ignore")  # the "kernel not used because ..." notes
            step(False)
        return "fused"
    except RuntimeError:
        return "math fallback"


def memory_case(case: dict) -> None:
    """Child process: one warm-up step, then the peak memory of one more; prints JSON."""
    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    step = build_step(case, device)
    need_weights = case["impl"] == "textbook"
    step(need_weights)
    with PeakMemory(device) as peak:
        step(need_weights)
    print(json.dumps({"peak_bytes": peak.peak}))


OOM = "out of memory"


def release(device: torch.device) -> None:
    """Give freed memory back, so the next case (or a measuring child process) finds it free: the
    CUDA caching allocator otherwise keeps what the timed textbook cases used (tens of GiB)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def time_case(
    case: dict, impls: tuple[str, ...], repeats: int, device: torch.device
) -> tuple[dict[str, float | str], str]:
    """Median step times per implementation ("out of memory" where it does not fit) and the fast
    path's kernel; the case's memory is released before returning."""
    times: dict[str, float | str] = {}
    kernel = "–"
    try:
        step = build_step(case, device)
        kernel = fast_kernel(step)
        steps = {impl: (lambda nw=(impl == "textbook"), s=step: s(nw)) for impl in impls}
        try:
            times.update(time_interleaved(steps, repeats, device))  # taking turns, as everywhere
        except torch.OutOfMemoryError:
            release(device)
            for impl in impls:  # one by one: a textbook case that does not fit still leaves the fast time
                try:
                    times.update(time_interleaved({impl: steps[impl]}, repeats, device))
                except torch.OutOfMemoryError:
                    times[impl] = OOM
                    release(device)
        del steps
        del step
    except torch.OutOfMemoryError:
        times = {impl: OOM for impl in impls}
    release(device)
    return times, kernel


def peak_in_child(script: Path, case: dict) -> float | str:
    """Peak MiB of the case in a fresh process, or "out of memory" when it does not fit there."""
    try:
        return measure_in_subprocess(script, case)["peak_bytes"] / MIB
    except RuntimeError as err:
        if "OutOfMemoryError" in str(err) or "out of memory" in str(err):
            return OOM
        raise


def fmt(value: float | str, spec: str) -> str:
    return value if isinstance(value, str) else format(value, spec)


def ratio(a: float | str, b: float | str, spec: str) -> str:
    return "–" if isinstance(a, str) or isinstance(b, str) else format(a / b, spec)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, nargs="+", default=[256, 1024, 2048, 4096, 8192], help="token counts N")
    p.add_argument(
        "--textbook-max-tokens",
        type=int,
        default=4096,
        help="skip the textbook path above this N (its N×N tensors need several GiB at 8192)",
    )
    p.add_argument("--modules", nargs="+", choices=MODULES, default=list(MODULES))
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--coarse-channels", type=int, default=512, help="MHCA: channels of the coarse feature Y")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--no-qk-norm", action="store_true", help="modules without the query/key normalisation")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported), after 1 warm-up")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", choices=("bf16",), default=None, help="autocast dtype (bf16)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--smoke", action="store_true", help="smallest size (256 tokens) and 1 repeat: a quick check")
    p.add_argument("--output", help="also write the report to this file")
    p.add_argument("--memory-case", help=argparse.SUPPRESS)  # internal: run one case in a child process
    args = p.parse_args(argv)
    if args.smoke:
        args.tokens, args.repeats = [256], 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_case:
        return memory_case(json.loads(args.memory_case))
    device = resolve_device(args.device)
    base = dict(
        channels=args.channels,
        coarse_channels=args.coarse_channels,
        heads=args.heads,
        batch=args.batch,
        device=device.type,
        amp=args.amp,
        qk_norm=not args.no_qk_norm,
    )
    script = Path(__file__).resolve()
    gflops_before = reference_gflops(device)
    rows = []
    for module in args.modules:
        for n in args.tokens:
            case = dict(base, module=module, tokens=n)
            impls = IMPLS if n <= args.textbook_max_tokens else ("fast",)
            times, kernel = time_case(case, impls, args.repeats, device)
            mem = {impl: peak_in_child(script, dict(case, impl=impl, threads=args.threads)) for impl in impls}
            h, w = grid_for(n)
            if "textbook" in times:
                tb_time, tb_mem = fmt(times["textbook"], ".3f"), fmt(mem["textbook"], ",.0f")
                time_ratio = ratio(times["fast"], times["textbook"], ".2f")
                mem_ratio = ratio(mem["fast"], mem["textbook"], ".3f")
            else:
                scores_gib = args.batch * args.heads * n * n * 4 / 2**30
                tb_time = tb_mem = f"not run ({scores_gib:.0f} GiB per N×N tensor)"
                time_ratio = mem_ratio = "–"
            rows.append(
                [
                    module,
                    f"{n:,} ({h}×{w})",
                    kernel,
                    fmt(times["fast"], ".3f"),
                    tb_time,
                    time_ratio,
                    fmt(mem["fast"], ",.0f"),
                    tb_mem,
                    mem_ratio,
                ]
            )
            print(f"# done {module} N={n}", file=sys.stderr, flush=True)
    header = [
        "module",
        "tokens N (grid)",
        "fast path kernel",
        "fast s",
        "textbook s",
        "time fast/textbook",
        "fast MiB",
        "textbook MiB",
        "memory fast/textbook",
    ]
    amp = f", autocast {args.amp}" if args.amp else ""
    qk_norm = "off" if args.no_qk_norm else "on"
    report = (
        f"Attention forward+backward: batch {args.batch}, {args.channels} channels "
        f"(MHCA coarse {args.coarse_channels}), {args.heads} heads, qk_norm {qk_norm}{amp}; median of {args.repeats} "
        f"after 1 warm-up; peak memory above the step's start, one process per case.\n"
        f"Machine: {machine_line(device)}\n"
        f"Reference 1024² float32 matmul: {gflops_before:.0f} GFLOP/s before the run, "
        f"{reference_gflops(device):.0f} after (a drop means other load on the machine).\n\n"
        + markdown_table(header, rows)
    )
    emit(report, args.output)


if __name__ == "__main__":
    main()

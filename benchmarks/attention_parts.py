"""Where the attention model's extra training time goes: each attention part of the full model
timed alone, forward and backward, at the shapes it has in that model, against the plain U-Net's
whole training step.

Run from the repository root:
    python benchmarks/attention_parts.py [--size 256] [--batch 16] [--base-channels 16] [--device cuda] [--amp bf16]

The full U-Net Transformer (the attention settings of ``configs/model/unet_attention.yaml``, as
``train.py`` builds it) runs one forward pass with hooks that keep the inputs of its MHSA block
and of every MHCA gate. Each part is then timed on copies of those inputs: its forward, and its
backward from a random output gradient (the gradients of its inputs and parameters, as in
training). The plain U-Net's training step (``benchmarks/model.py``: forward, cross-entropy,
backward, AdamW) is timed in the same process, the cases taking turns in every repeat, so
"% of plain step" says how much each part adds to a step of the plain U-Net. The parts do not
include what the full model changes around them (the pooled skip MHCA reuses, the gated skip
the decoder concatenates); compare their sum with ``benchmarks/model.py``'s full-minus-plain step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``segattn`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import autocast, emit, machine_line, markdown_table, resolve_device, time_interleaved
from benchmarks.model import build_model, build_step, config_defaults
from segattn.models.token_pooling import key_value_grid


def captured_inputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.nn.Module, tuple, dict]]:
    """Name → (module, positional inputs, keyword inputs) of each attention part in one forward pass."""
    parts: dict[str, tuple[torch.nn.Module, tuple, dict]] = {}
    named = [("MHSA", model.self_attention)] if model.self_attention is not None else []
    named += [(f"MHCA level {level}", gate) for level, gate in (model.cross_attention or {}).items()]
    hooks = []
    for name, module in named:

        def keep(mod, args, kwargs, name=name):
            parts[name] = (
                mod,
                tuple(a.detach() for a in args),
                {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()},
            )

        hooks.append(module.register_forward_pre_hook(keep, with_kwargs=True))
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return parts


def part_step(module: torch.nn.Module, args: tuple, kwargs: dict, device: torch.device, amp: str | None):
    """Forward and backward of one part on fresh leaf copies of its inputs."""
    leaves = tuple(a.clone().requires_grad_() for a in args)
    kwargs = {
        k: v.clone().requires_grad_() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in kwargs.items()
    }
    with autocast(device, amp):
        out = module(*leaves, **kwargs)[0]
    grad = torch.randn_like(out)

    def step() -> None:
        with autocast(device, amp):
            result = module(*leaves, **kwargs)[0]
        result.backward(grad)
        module.zero_grad(set_to_none=True)
        for t in (*leaves, *kwargs.values()):
            if isinstance(t, torch.Tensor):
                t.grad = None

    return step


def describe(name: str, module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[str, str, int]:
    """(queries, keys, heads) of a part, for the table."""
    if name == "MHSA":
        h, w = args[0].shape[-2:]
        return f"{h * w:,} ({h}×{w})", f"{h * w:,}", module.heads
    coarse = args[1] if len(args) > 1 else kwargs["coarse"]
    hy, wy = coarse.shape[-2:]
    gh, gw = key_value_grid(hy, wy, module.max_tokens)
    return f"{hy * wy:,} ({hy}×{wy})", f"{gh * gw:,}", module.heads


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="image side")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median), after 1 warm-up")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--amp", choices=("bf16",), default=None, help="autocast dtype (bf16)")
    p.add_argument(
        "--contiguous", action="store_true", help="contiguous memory format (default: channels_last, as trained)"
    )
    p.add_argument("--smoke", action="store_true", help="32 px, batch 1, base 8, 1 repeat: a quick check")
    p.add_argument("--output", help="also write the report to this file")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.base_channels, args.repeats = 32, 1, 8, 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    case = dict(
        size=args.size,
        batch=args.batch,
        base_channels=args.base_channels,
        amp=args.amp,
        channels_last=not args.contiguous,
        model=config_defaults(),
    )
    layout = torch.contiguous_format if args.contiguous else torch.channels_last
    torch.manual_seed(0)
    full = build_model({**case, "variant": "MHSA+MHCA"}).to(device).train().to(memory_format=layout)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=layout)
    with autocast(device, args.amp):
        parts = captured_inputs(full, x)
    steps = {"plain U-Net step": build_step({**case, "variant": "plain U-Net"}, device)[0]}
    steps.update({name: part_step(*parts[name], device, args.amp) for name in parts})
    times = time_interleaved(steps, args.repeats, device)
    plain = times["plain U-Net step"]
    rows = [["plain U-Net step (forward, loss, backward, AdamW)", "–", "–", "–", f"{plain * 1000:.1f}", "100.0"]]
    for name, (module, a, kw) in parts.items():
        queries, keys, heads = describe(name, module, a, kw)
        rows.append(
            [
                f"{name} (forward and backward)",
                queries,
                keys,
                heads,
                f"{times[name] * 1000:.1f}",
                f"{100 * times[name] / plain:.1f}",
            ]
        )
    added = sum(times[name] for name in parts)
    rows.append(["all attention parts", "–", "–", "–", f"{added * 1000:.1f}", f"{100 * added / plain:.1f}"])
    lines = [
        f"Attention parts of the full model at {args.size} px, batch {args.batch}, base_channels {args.base_channels}, "
        f"{'contiguous' if args.contiguous else 'channels_last'}{', bf16 autocast' if args.amp else ''}; "
        f"median of {args.repeats} after 1 warm-up, the cases taking turns.",
        machine_line(device),
        "",
        markdown_table(["part", "queries (grid)", "keys", "heads", "ms", "% of plain step"], rows),
    ]
    emit("\n".join(lines), args.output)


if __name__ == "__main__":
    main()

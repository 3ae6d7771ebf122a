"""segattn.models.unet_attention: the U-Net Transformer's shapes, gradients, attention paths, ablations and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segattn.models import (
    AttentionMaps,
    MultiHeadCrossAttentionGate,
    MultiHeadSelfAttention2d,
    UNetAttention,
)

TINY = dict(depth=2, base_channels=8, heads=2)


ABLATIONS = [(False, False), (True, False), (False, True), (True, True)]


def attention_parameter_names(model: torch.nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if n.startswith(("self_attention", "cross_attention"))]


@pytest.mark.parametrize("size,num_classes,in_channels", [((32, 32), 2, 3), ((64, 96), 3, 1), ((16, 48), 5, 3)])
def test_output_shape(size, num_classes, in_channels):
    model = UNetAttention(in_channels=in_channels, num_classes=num_classes, **TINY)
    out = model(torch.randn(2, in_channels, *size))
    assert out.shape == (2, num_classes, *size)


def test_default_model_output_shape():
    model = UNetAttention().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    model = UNetAttention(**TINY)
    model(torch.randn(2, 3, 32, 32)).square().mean().backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert missing == []


@pytest.mark.parametrize("self_attention,cross_attention", ABLATIONS)
@pytest.mark.parametrize("max_tokens", [1024, 4])
def test_fast_path_equals_explicit_path(self_attention, cross_attention, max_tokens):
    torch.manual_seed(0)
    model = UNetAttention(**TINY, self_attention=self_attention, cross_attention=cross_attention, max_tokens=max_tokens)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # move BatchNorm running statistics away from their init
    model.eval()
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        fast = model(x)
        explicit, maps = model(x, return_attention=True)
    assert isinstance(maps, AttentionMaps)
    torch.testing.assert_close(fast, explicit, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("gate_channels", "gate_batchnorm"), [("skip", True), ("one", True), ("one", False)])
def test_fast_path_equals_explicit_path_in_train_mode_with_gradients(gate_channels, gate_batchnorm):
    """Training uses the fused path, the figures the explicit one: same logits and same gradients."""
    torch.manual_seed(0)
    model = UNetAttention(**TINY, max_tokens=4, gate_channels=gate_channels, gate_batchnorm=gate_batchnorm).train()
    x, target = torch.randn(2, 3, 32, 32), torch.randint(0, 2, (2, 32, 32))
    grads = []
    for explicit in (False, True):
        model.zero_grad()
        logits = model(x, return_attention=True)[0] if explicit else model(x)
        torch.nn.functional.cross_entropy(logits, target).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if not explicit:
            fast_logits = logits.detach()
    torch.testing.assert_close(logits.detach(), fast_logits, rtol=1e-5, atol=1e-5)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_fast_path_runs_the_fused_kernel_and_never_the_math_fallback():
    """Non-contiguous token layouts make SDPA fall back to the math kernel (N×N scores): guard it."""
    from torch.profiler import ProfilerActivity, profile

    model = UNetAttention(**TINY).eval()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(torch.randn(1, 3, 32, 32))
    ops = {event.key for event in prof.key_averages()}
    fused = {op for op in ops if op.startswith("aten::_scaled_dot_product") and "math" not in op}
    assert fused, f"no fused attention kernel ran: {sorted(o for o in ops if 'attention' in o)}"
    assert not any("math" in op for op in ops if "scaled_dot_product" in op)
    calls = sum(e.count for e in prof.key_averages() if e.key in fused)
    assert calls == 1 + TINY["depth"]  # the MHSA and one MHCA per skip level


@pytest.mark.parametrize("self_attention,cross_attention", ABLATIONS)
def test_ablations_build_and_run(self_attention, cross_attention):
    model = UNetAttention(**TINY, self_attention=self_attention, cross_attention=cross_attention)
    logits, maps = model(torch.randn(2, 3, 32, 32), return_attention=True)
    assert logits.shape == (2, 2, 32, 32)
    names = attention_parameter_names(model)
    assert any(n.startswith("self_attention") for n in names) == self_attention
    assert any(n.startswith("cross_attention") for n in names) == cross_attention
    assert (maps.self_attention is not None) == self_attention
    assert len(maps.gates) == (2 if cross_attention else 0)


def test_plain_unet_has_no_attention_parameters():
    attn = UNetAttention(**TINY)
    plain = UNetAttention(**TINY, self_attention=False, cross_attention=False)
    assert attention_parameter_names(plain) == []
    n_plain = sum(p.numel() for p in plain.parameters())
    n_attn = sum(p.numel() for p in attn.parameters())
    n_attn_only = sum(p.numel() for n, p in attn.named_parameters() if n in attention_parameter_names(attn))
    assert n_attn - n_attn_only == n_plain
    assert not any(isinstance(m, (MultiHeadSelfAttention2d, MultiHeadCrossAttentionGate)) for m in plain.modules())


def test_attention_maps_shapes_and_ranges():
    torch.manual_seed(0)
    model = UNetAttention(depth=3, base_channels=8, heads=4, head_dim=4, max_tokens=16).eval()
    with torch.no_grad():
        _, maps = model(torch.randn(2, 3, 64, 32), return_attention=True)
    # MHSA: bottleneck 8×4 = 32 tokens, per head, rows sum to 1 over the keys.
    assert maps.self_attention.shape == (2, 4, 32, 32)
    assert maps.self_attention_size == (8, 4)
    torch.testing.assert_close(maps.self_attention.sum(-1), torch.ones(2, 4, 32))
    assert (maps.self_attention >= 0).all()
    # Heads are really different heads (not one head repeated).
    assert not torch.allclose(maps.self_attention[:, 0], maps.self_attention[:, 1])
    # MHCA gates: one per skip level and skip channel at the skip's resolution, strictly inside (0, 1).
    assert [tuple(g.shape) for g in maps.gates] == [(2, 8, 64, 32), (2, 16, 32, 16), (2, 32, 16, 8)]
    for gate in maps.gates:
        assert gate.min() > 0 and gate.max() < 1
    # Queries on the decoder feature's full grid (so the gate keeps its resolution), keys and
    # values pooled to at most max_tokens cells; heads = channels // head_dim; rows sum to 1.
    assert maps.cross_attention_sizes == [(32, 16), (16, 8), (8, 4)]
    for level, ((qh, qw), (kh, kw), w) in enumerate(
        zip(maps.cross_attention_sizes, maps.cross_attention_key_sizes, maps.cross_attention)
    ):
        heads = (8 * 2**level) // 4
        assert kh * kw <= 16
        assert w.shape == (2, heads, qh * qw, kh * kw)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, heads, qh * qw))


def test_one_channel_gates_and_heads_from_head_dim():
    model = UNetAttention(depth=3, base_channels=16, head_dim=32, gate_channels="one").eval()
    assert [m.heads for m in model.cross_attention.values()] == [1, 1, 2]  # 16, 32, 64 channels
    with torch.no_grad():
        _, maps = model(torch.randn(1, 3, 32, 32), return_attention=True)
    assert [tuple(g.shape) for g in maps.gates] == [(1, 1, 32, 32), (1, 1, 16, 16), (1, 1, 8, 8)]


def test_cross_attention_levels_leave_out_skips_and_keep_checkpoint_keys():
    """MHCA on levels 1 and 2 only: level 0's skip passes ungated, the maps name their levels, and the
    parameters of a gated level have the same names as in the model with every level gated."""
    torch.manual_seed(0)
    every = UNetAttention(depth=3, base_channels=8, heads=4, head_dim=4, max_tokens=16).eval()
    some = UNetAttention(
        depth=3, base_channels=8, heads=4, head_dim=4, max_tokens=16, cross_attention_levels=[2, 1]
    ).eval()
    assert list(some.cross_attention) == ["1", "2"]
    names_every = {n for n in every.state_dict() if n.startswith("cross_attention.")}
    names_some = {n for n in some.state_dict() if n.startswith("cross_attention.")}
    assert names_some == {n for n in names_every if not n.startswith("cross_attention.0.")} and names_some
    with torch.no_grad():
        logits, maps = some(torch.randn(2, 3, 64, 32), return_attention=True)
        fast = some(torch.randn(2, 3, 64, 32))
    assert logits.shape == fast.shape == (2, 2, 64, 32)
    assert maps.gate_levels == [1, 2]
    assert [tuple(g.shape) for g in maps.gates] == [(2, 16, 32, 16), (2, 32, 16, 8)]
    assert maps.cross_attention_sizes == [(16, 8), (8, 4)]
    # Level 0 ungated: a model with a gate at level 0 forced to pass everything gives the same output.
    every.load_state_dict(some.state_dict(), strict=False)
    with torch.no_grad():
        every.cross_attention["0"].gate_norm.bias.fill_(1e4)  # sigmoid = 1: the skip passes unchanged
        x = torch.randn(1, 3, 64, 32)
        torch.testing.assert_close(every(x), some(x))
    for bad in ([], [3], [-1], [True]):
        with pytest.raises(ValueError, match="cross_attention_levels"):
            UNetAttention(depth=3, base_channels=8, cross_attention_levels=bad)


def test_deep_supervision_heads():
    model = UNetAttention(**TINY, deep_supervision=1).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == (2, 2, 32, 32) and [tuple(a.shape) for a in aux] == [(2, 2, 16, 16)]
    torch.testing.assert_close(logits, model(x))  # the auxiliary heads do not change the output
    assert UNetAttention(**TINY).forward_with_aux(torch.randn(1, 3, 32, 32))[1] == []


def test_input_size_not_divisible_is_a_clear_error():
    model = UNetAttention(**TINY)  # needs multiples of 4
    with pytest.raises(ValueError, match=r"input height: got 30; must be a multiple of 2\*\*depth = 4 .*28 or 32"):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"input width: got 33; .*32 or 36"):
        model(torch.randn(1, 3, 32, 33))


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(base_channels=12, heads=7), r"heads: got 7, which does not divide the 192 channels of the bottleneck"),
        (dict(base_channels=8, head_dim=0), r"head_dim: got 0; expected an integer >= 1"),
        (dict(base_channels=8, gate_channels="all"), r"gate_channels: got 'all'; allowed: one, skip"),
        (
            dict(depth=2, base_channels=8, deep_supervision=2),
            r"deep_supervision: got 2; expected an integer from 0 to 1 \(skip levels - 1\)",
        ),
        (dict(base_channels=8, heads=0), r"heads: got 0; expected an integer >= 1"),
        (dict(base_channels=6, heads=2), r"base_channels: got 6; with attention it must be a multiple of 4"),
        (dict(depth=0), r"depth: got 0; expected an integer >= 1"),
        (dict(num_classes=0), r"num_classes: got 0; expected an integer >= 1"),
        (dict(max_tokens=0, base_channels=8, heads=2), r"max_tokens: got 0; expected an integer >= 1"),
        (dict(base_channels=8, registers=-1), r"registers: got -1; expected an integer >= 0"),
        (dict(base_channels=8, gate_init=1.0), r"gate_init: got 1.0; expected a value in \(0, 1\)"),
        (dict(base_channels=8, gate_init=True), r"gate_init: got True; expected a value in \(0, 1\)"),
        (dict(base_channels=8, gate_batchnorm="no"), r"gate_batchnorm: got 'no'; expected true or false"),
    ],
)
def test_invalid_settings_raise_clear_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        UNetAttention(**kwargs)


def test_attention_settings_ignored_when_switched_off():
    # heads that would not divide the channels do not matter for a plain U-Net.
    UNetAttention(base_channels=12, heads=5, self_attention=False, cross_attention=False)


def test_hydra_config_instantiates_the_model():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "model" / "unet_attention.yaml")
    assert cfg.in_channels is None and cfg.num_classes is None  # the data's, filled in by train.py
    model = instantiate(cfg, in_channels=1, num_classes=3)
    assert isinstance(model, UNetAttention) and model.inc[0].in_channels == 1 and model.head.out_channels == 3
    ablation = instantiate(cfg, in_channels=3, num_classes=2, self_attention=False, cross_attention=False)
    assert attention_parameter_names(ablation) == []


@pytest.mark.slow
def test_1024px_forward_backward_fits_in_8_gib():
    """Peak resident memory of a batch-1 training step at 1024×1024, measured in a fresh process."""
    code = (
        "import json, resource, torch\n"
        "from segattn.models import UNetAttention\n"
        "torch.manual_seed(0)\n"
        "m = UNetAttention(base_channels=32)\n"
        "y = m(torch.randn(1, 3, 1024, 1024))\n"
        "y.float().mean().backward()\n"
        "print(json.dumps({'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_gib = json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kib"] / 2**20
    assert peak_gib < 8.0, f"1024 px training step peaked at {peak_gib:.2f} GiB"

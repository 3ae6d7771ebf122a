"""Timing, peak-memory and reporting helpers shared by the benchmark scripts.

Times are taken in the calling process, with the cases of one comparison interleaved repeat by
repeat, so that a load spike from other users of the machine hits every case alike and the ratios
stay meaningful. Peak memory is taken in a fresh process per case, because a process's peak (CPU
RSS high-water mark, CUDA caching allocator) is shared by everything that ran in it before.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock times cover the work, not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    steps: dict[str, Callable[[], None]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each step; the steps take turns within every repeat."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def reference_gflops(device: torch.device, n: int = 1024, repeats: int = 15) -> float:
    """Median GFLOP/s of an n×n float32 matmul: a yardstick printed before and after a run.

    The machine may be shared; if this figure drops during a run, the absolute times of that run
    are inflated by other load (the in-run ratios much less so, since the cases take turns).
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    seconds = time_interleaved({"mm": lambda: torch.mm(a, b)}, repeats, device, warmup=2)["mm"]
    return 2 * n**3 / seconds / 1e9


def _proc_status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a block above what was held when it started, in bytes.

    CUDA: ``torch.cuda.max_memory_allocated`` above ``memory_allocated`` at the start (tensor
    memory; the allocator's cache is not counted). CPU: the process's RSS high-water mark above the
    RSS at the start; on Linux the mark is reset first through /proc/self/clear_refs, elsewhere
    ``ru_maxrss`` is used, which also counts any earlier peak (so run this in a fresh process).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            self.hwm_reset = _reset_rss_peak()
            self.baseline = (_proc_status_kib("VmRSS") or 0) * 1024
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            top = torch.cuda.max_memory_allocated(self.device)
        elif self.hwm_reset and _proc_status_kib("VmHWM") is not None:
            top = _proc_status_kib("VmHWM") * 1024
        else:
            import resource

            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            top = maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux
        self.peak = max(0, top - self.baseline)


def measure_in_subprocess(script: Path, case: dict, timeout: float = 1800, flag: str = "--memory-case") -> dict:
    """Run ``script --memory-case JSON`` (or another ``flag``) in a fresh interpreter and return
    the JSON it prints last.

    For memory, glibc is told to serve allocations of 128 KiB and more with mmap, so a freed
    tensor goes back to the system at once and the RSS follows the live tensors instead of the
    malloc heap. Other flags (timing) run with the allocator as training has it.
    """
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072") if flag == "--memory-case" else None
    proc = subprocess.run(
        [sys.executable, str(script), flag, json.dumps(case)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{flag.strip('-').replace('-', ' ')} {case} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: torch.device) -> str:
    """One line naming what the numbers were measured on."""
    parts = [f"torch {torch.__version__}", f"device {device.type}"]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    parts += [f"CPU {cpu_model()}", f"{os.cpu_count()} logical CPUs", f"{torch.get_num_threads()} torch threads"]
    return ", ".join(parts)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table: first column left-aligned, the numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text: str, output: str | None) -> None:
    """Print the report and, with ``--output``, also write it to that file."""
    print(text)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda``; a clear error when CUDA was asked for and is missing."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device, amp: str | None):
    """bf16 autocast when ``--amp bf16`` was given, otherwise a no-op context."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)

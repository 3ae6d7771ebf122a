"""Start-up time: from ``python train.py`` to the first training step, and where it goes.

Run from the repository root:
    python benchmarks/startup.py [--experiment smoke] [--repeats 3] [--output FILE]

Each repeat launches ``train.py experiment=<experiment>`` in a fresh process (one step, then it
stops) with a callback (``StartupClock``) that writes the wall-clock time of each stage: the
network built and the callbacks made (Hydra composed, data module and model constructed),
Lightning's fit set up (``on_fit_start``), and the start of the first training batch. The
process's launch time is taken by this script just before it starts the child. A first,
untimed launch warms the file cache ("warm" start-up, as a user who runs a second command sees
it). ``import`` rows time ``python -c "import ..."`` of the heaviest modules alone, for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L

from benchmarks.common import REPO_ROOT, emit, machine_line, markdown_table


class StartupClock(L.Callback):
    """Writes the wall-clock times (``time.time()``) of the start-up stages to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.times = {"configured": time.time()}

    def on_fit_start(self, trainer, pl_module) -> None:
        self.times["fit set up"] = time.time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "first step" not in self.times:
            self.times["first step"] = time.time()
            self.path.write_text(json.dumps(self.times))


def launch(experiment: str, workdir: Path, index: int) -> dict[str, float]:
    """Seconds from launch to each stage of one ``train.py`` run."""
    clock = workdir / f"clock{index}.json"
    command = [
        sys.executable,
        "train.py",
        f"experiment={experiment}",
        f"hydra.run.dir={workdir / f'run{index}'}",
        "+trainer.max_steps=1",
        "trainer.enable_progress_bar=false",
        "+callbacks.startup._target_=benchmarks.startup.StartupClock",
        f"+callbacks.startup.path={clock}",
    ]
    start = time.time()
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not clock.is_file():
        raise RuntimeError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {stage: t - start for stage, t in json.loads(clock.read_text()).items()}


def import_seconds(module: str) -> float:
    start = time.time()
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO_ROOT, check=True)
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="smoke")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        launch(args.experiment, workdir, 0)  # warms the file cache
        runs = [launch(args.experiment, workdir, i) for i in range(1, args.repeats + 1)]
        imports = {
            m: statistics.median(import_seconds(m) for _ in range(args.repeats))
            for m in ("torch", "lightning", "segattn.cli.train")
        }
    rows = [[f"`python -c 'import {m}'`", f"{s:.2f}"] for m, s in imports.items()]
    for stage in ("configured", "fit set up", "first step"):
        rows.append(
            [f"train.py experiment={args.experiment}: {stage}", f"{statistics.median(r[stage] for r in runs):.2f}"]
        )
    text = "\n".join(
        [
            f"Start-up, seconds from launch (median of {args.repeats} warm runs). "
            f"{machine_line(__import__('torch').device('cpu'))}",
            "",
            markdown_table(["stage", "seconds"], rows),
        ]
    )
    emit(text, args.output)


if __name__ == "__main__":
    main()

"""Resuming train.py: from last.ckpt at the right step, after a SIGKILL mid-epoch, and with two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.commands import run
from tests.helpers.paths import ROOT

STOP_AFTER_FIRST_EPOCH = (  # an interrupted 3-epoch run: stop once val/dice >= -1, i.e. after epoch 1
    "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
    "+callbacks.stop.monitor=val/dice",
    "+callbacks.stop.mode=max",
    "+callbacks.stop.stopping_threshold=-1.0",
)


def test_resume_continues_at_the_right_epoch_and_step(smoke_run, tmp_path):
    first = tmp_path / "first"
    run("train.py", "experiment=smoke", f"hydra.run.dir={first}", "trainer.max_epochs=3", *STOP_AFTER_FIRST_EPOCH)
    last = first / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"]) == (1, 4)
    resumed = tmp_path / "resumed"
    run("train.py", "experiment=smoke", f"hydra.run.dir={resumed}", "trainer.max_epochs=3", f"ckpt_path={last}")
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (ckpt["epoch"], ckpt["global_step"]) == (3, 12)
    sched = ckpt["lr_schedulers"][0]
    assert sched["last_epoch"] == 12  # the schedule went on from where it stopped

    # A longer run or another schedule is not the same run: refused, naming what changed.
    proc = run(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={tmp_path / 'longer'}",
        "trainer.max_epochs=5",
        "module.lr=0.01",
        "module.scheduler=cosine",
        f"ckpt_path={last}",
        check=False,
    )
    assert proc.returncode == 2
    message = proc.stdout + proc.stderr
    assert (
        "trainer.max_epochs: 3 in the checkpoint, 5 now" in message
        and "module.lr: 0.003 in the checkpoint, 0.01 now" in message
    )
    assert "module.scheduler: 'onecycle' in the checkpoint, 'cosine' now" in message
    assert f"init_from={last}" in message and "Traceback" not in message
    assert not (tmp_path / "longer" / "checkpoints").exists()

    # Settings outside that list that change the schedule's length (here the training images) are
    # caught by the length the checkpoint stores, before a single step.
    assert torch.load(last, map_location="cpu", weights_only=True)["segattn_schedule_total_steps"] == 12
    proc = run(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={tmp_path / 'more_data'}",
        "trainer.max_epochs=3",
        "data.num_train=24",
        f"ckpt_path={last}",
        check=False,
    )
    assert proc.returncode == 2
    message = proc.stdout + proc.stderr
    assert (
        "the checkpoint's learning-rate schedule spans 12 optimizer steps, but this run's settings give 18" in message
    )
    assert "init_from=" in message and "Traceback" not in message


# 24 training images / batch 4 = 6 steps per epoch, 2 epochs, a checkpoint after every step,
# augmentation on (random flips), shuffled data.
COMMON = [
    "experiment=smoke",
    "data.num_train=24",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "callbacks.step_checkpoint.every_n_train_steps=1",
    "callbacks.attention_images=null",
]


STEPS_PER_EPOCH = 6


def train_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *COMMON, f"hydra.run.dir={run_dir}", *extra]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def final_state(run_dir: Path) -> tuple[dict, float, int]:
    ckpt = load(run_dir / "checkpoints" / "last.ckpt")
    best = [v for k, v in ckpt["callbacks"].items() if "'monitor': 'val/dice'" in k][0]["best_model_score"]
    return ckpt["state_dict"], float(best), ckpt["global_step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    alone = tmp_path / "alone"
    subprocess.run(train_command(alone), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    last = killed / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        train_command(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_after = STEPS_PER_EPOCH + 2  # in the middle of the second epoch
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if last.exists() and load(last)["global_step"] >= kill_after:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    step_at_kill = load(last)["global_step"]
    assert step_at_kill % STEPS_PER_EPOCH != 0, f"killed at step {step_at_kill}, not mid-epoch"
    assert step_at_kill < 2 * STEPS_PER_EPOCH

    subprocess.run(
        train_command(killed, f"ckpt_path={last}"), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600
    )

    weights_alone, dice_alone, steps_alone = final_state(alone)
    weights_resumed, dice_resumed, steps_resumed = final_state(killed)
    assert steps_alone == steps_resumed == 2 * STEPS_PER_EPOCH
    assert weights_alone.keys() == weights_resumed.keys()
    for name in weights_alone:
        torch.testing.assert_close(weights_resumed[name], weights_alone[name], rtol=0, atol=1e-6, msg=name)
    assert dice_resumed == pytest.approx(dice_alone, abs=1e-6)


@pytest.mark.slow
def test_two_process_run_resumed_mid_epoch_matches_an_uninterrupted_one(tmp_path):
    """DDP: each process resumes its own share of the epoch (the checkpoint of a mid-epoch step,
    which is what a run killed there leaves, kept here from the uninterrupted run)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
    keep_steps = [
        "callbacks.step_checkpoint.save_top_k=-1",
        '++callbacks.step_checkpoint.filename="at{step}"',
        "++callbacks.step_checkpoint.auto_insert_metric_name=false",
    ]
    alone = tmp_path / "alone"
    subprocess.run(
        train_command(alone, *ddp, *keep_steps), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600
    )
    steps_per_epoch = STEPS_PER_EPOCH // 2  # 12 images per process, batch 4
    middle = [p for p in (alone / "checkpoints").glob("at*.ckpt") if load(p)["global_step"] == steps_per_epoch + 1]
    assert middle, sorted(p.name for p in (alone / "checkpoints").iterdir())

    resumed = tmp_path / "resumed"
    proc = subprocess.run(
        train_command(resumed, *ddp, f"ckpt_path={middle[0]}"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    weights_alone, _, steps_alone = final_state(alone)
    weights_resumed, _, steps_resumed = final_state(resumed)
    assert steps_alone == steps_resumed == 2 * steps_per_epoch
    for name in weights_alone:
        torch.testing.assert_close(weights_resumed[name], weights_alone[name], rtol=0, atol=1e-6, msg=name)

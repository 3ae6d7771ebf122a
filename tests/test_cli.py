"""End-to-end command lines: train (smoke), evaluate, resume, DDP, predict, unsafe checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <script>.py overrides...`` from the project root, or the installed console
    script ``<script>`` (e.g. ``segattn-predict``), as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = (
        [sys.executable, str(ROOT / script)] if script.endswith(".py") else [str(Path(sys.executable).parent / script)]
    )
    proc = subprocess.run([*command, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def tensorboard_tags(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc.Tags()


def test_smoke_training_writes_checkpoints_config_and_tensorboard(smoke_run):
    assert (smoke_run / "checkpoints" / "last.ckpt").is_file()
    assert (smoke_run / "checkpoints" / "best.ckpt").is_file()
    assert (smoke_run / "config.yaml").is_file()
    tags = tensorboard_tags(smoke_run)
    for scalar in (
        "train/loss",
        "train/loss_step",
        "val/loss",
        "val/dice",
        "val/iou",
        "val/dice_per_image",
        "val/iou_per_image",
    ):
        assert scalar in tags["scalars"], scalar
    assert {"lr/weights", "lr/norms_and_biases"} <= set(tags["scalars"])
    assert any(t.startswith("val_predictions/") for t in tags["images"])
    assert any(t.startswith("val_mhsa/") for t in tags["images"])
    assert any(t.startswith("val_gates/") for t in tags["images"])
    ckpt = torch.load(smoke_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 2 * 4  # 16 images / batch 4, 2 epochs


def test_evaluate_writes_metrics_matching_a_direct_computation(smoke_run, tmp_path):
    ckpt_path = smoke_run / "checkpoints" / "best.ckpt"
    out = tmp_path / "eval"
    proc = run("evaluate.py", f"ckpt_path={ckpt_path}", f"hydra.run.dir={out}", "save_predictions=true")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_images"] == 8
    assert metrics["checkpoint"] == str(ckpt_path.resolve())
    for key in ("dice", "iou"):
        assert set(metrics[key]) >= {"mean", "per_class", "per_image_mean", "dataset_level"}
    assert "| **mean, dataset-level** |" in proc.stdout

    # Direct computation: same model, same test images, IoU and Dice of class 1 by hand.
    from segattn.checkpoint import load_checkpoint
    from segattn.data import SyntheticDataModule
    from segattn.training.module import module_from_checkpoint

    checkpoint = load_checkpoint(ckpt_path)
    module = module_from_checkpoint(checkpoint).eval()
    data_cfg = {
        k: v
        for k, v in checkpoint["hyper_parameters"]["config"]["data"].items()
        if not k.startswith("_") and "transform" not in k
    }
    dm = SyntheticDataModule(**data_cfg)
    dm.setup("test")
    tp = fp = fn = 0
    per_image = []
    with torch.no_grad():
        for item in dm.dataset("test"):
            pred = module(item["image"][None]).argmax(1)[0]
            t, p = item["mask"] == 1, pred == 1
            i_tp, i_fp, i_fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
            tp, fp, fn = tp + i_tp, fp + i_fp, fn + i_fn
            if i_tp + i_fp + i_fn:
                per_image.append(i_tp / (i_tp + i_fp + i_fn))
    assert metrics["iou"]["mean"] == pytest.approx(tp / (tp + fp + fn), abs=1e-9)
    assert metrics["dice"]["mean"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-9)
    assert metrics["iou"]["per_image_mean"] == pytest.approx(np.mean(per_image), abs=1e-9)
    masks = sorted((out / "predictions").glob("*_mask.png"))
    assert len(masks) == 8 and len(list((out / "predictions").glob("*_overlay.png"))) == 8


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


def test_last_checkpoint_is_the_final_state_even_when_the_best_stops_improving(tmp_path):
    """Lightning 2.6 refreshes a ModelCheckpoint's "last" file only when its top-k changes, so with
    the step checkpoint writing last.ckpt at step 10 and no improvement after epoch 1, last.ckpt
    stayed at step 10 of 12. It must be the state after the final epoch (what resuming and "the last
    checkpoint" mean). The monitored value here (epoch, minimised) never improves after epoch 1."""
    run_dir = tmp_path / "flat"
    run(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=3",
        "callbacks.model_checkpoint.monitor=epoch",
        "callbacks.model_checkpoint.mode=min",
        "callbacks.step_checkpoint.every_n_train_steps=5",
    )
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3 * 4  # 16 images / batch 4, 3 epochs
    assert best["global_step"] == 4  # the first epoch was never beaten


def test_init_from_starts_a_new_run_from_the_weights(smoke_run, tmp_path):
    source = smoke_run / "checkpoints" / "last.ckpt"
    new = tmp_path / "new"
    run(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={new}",
        "trainer.max_epochs=1",
        "module.lr=1e-12",
        f"init_from={source}",
    )
    before = torch.load(source, map_location="cpu", weights_only=True)
    after = torch.load(new / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (after["epoch"], after["global_step"]) == (1, 4)  # epochs and steps start afresh
    for key, value in before["state_dict"].items():
        if key.endswith("weight") and "running" not in key:
            torch.testing.assert_close(after["state_dict"][key], value, atol=1e-6, rtol=0, msg=key)
    proc = run(
        "train.py",
        "experiment=smoke",
        f"hydra.run.dir={tmp_path / 'both'}",
        f"init_from={source}",
        f"ckpt_path={source}",
        check=False,
    )
    assert proc.returncode == 2 and "init_from and ckpt_path are both set" in proc.stdout + proc.stderr


def test_predict_writes_masks_at_the_original_size(smoke_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(images / "b.jpg")
    out = tmp_path / "pred"
    run(
        "segattn-predict",
        f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
        f"input_dir={images}",
        f"output_dir={out}",
    )
    a = np.array(Image.open(out / "a_mask.png"))
    assert a.shape == (37, 53) and set(np.unique(a)) <= {0, 1}
    assert np.array(Image.open(out / "b_mask.png")).shape == (20, 30)
    assert Image.open(out / "a_overlay.png").size == (53, 37)
    # A truncated file is skipped: the others still get their masks, and the command fails naming it.
    (images / "a0_broken.png").write_bytes((images / "a.png").read_bytes()[:200])
    proc = run(
        "segattn-predict",
        f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
        f"input_dir={images}",
        f"output_dir={tmp_path / 'again'}",
        check=False,
    )
    assert proc.returncode == 2
    text = proc.stdout + proc.stderr
    assert (
        "1 of the 3 images" in text
        and "a0_broken.png" in text
        and "the other 2 masks" in text
        and "Traceback" not in text
    )
    assert sorted(p.name for p in (tmp_path / "again").glob("*_mask.png")) == ["a_mask.png", "b_mask.png"]


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_bad_device_split_and_data_key_are_config_errors_and_data_keys_override(smoke_run, tmp_path):
    # ConfigError is in every command's list of clean failures (one message, exit code 2).
    from omegaconf import OmegaConf

    from segattn.checkpoint import load_checkpoint
    from segattn.cli.common import datamodule_from_checkpoint, pick_device
    from segattn.cli.evaluate import evaluate
    from segattn.errors import ConfigError

    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    with pytest.raises(ConfigError, match=r"device: got 'gpu'; allowed: auto, cpu, cuda"):
        pick_device("gpu")
    with pytest.raises(ConfigError, match=r"split: got 'train'; allowed: test, val"):
        evaluate(OmegaConf.create({"split": "train"}))
    # A data key the checkpoint's data class does not take (the generated shapes have no mask files).
    with pytest.raises(ConfigError, match=r"data\.mask_suffix: unknown key; allowed keys: augment"):
        datamodule_from_checkpoint(load_checkpoint(ckpt), {"mask_suffix": "_m", "root": None}, str(ckpt))
    # On the command line: listed data keys override as data.<key>, any other as +data.<key>.
    run(
        "evaluate.py",
        f"ckpt_path={ckpt}",
        "data.image_size=48",
        "+data.num_test=3",
        f"hydra.run.dir={tmp_path / 'sized'}",
    )
    assert json.loads((tmp_path / "sized" / "metrics.json").read_text())["num_images"] == 3
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 30)).save(tmp_path / "images" / "a.png")
    device = run(
        "segattn-predict",
        f"ckpt_path={ckpt}",
        f"input_dir={tmp_path / 'images'}",
        "device=gpu",
        f"hydra.run.dir={tmp_path / 'device'}",
        check=False,
    )
    assert (
        device.returncode == 2
        and "device: got 'gpu'" in device.stdout + device.stderr
        and "Traceback" not in device.stdout + device.stderr
    )


def test_evaluate_scores_with_the_data_s_ignored_pixels(tiny_pets, tmp_path):
    # A binary Pet model trained with the border as pet, scored with data.ignore_border=true: the
    # border (label 255) is left out instead of crashing the metric.
    run(
        "train.py",
        "experiment=pets_binary",
        f"data.root={tiny_pets}",
        "data.image_size=32",
        "data.batch_size=4",
        "data.download=false",
        "model.depth=2",
        "model.base_channels=8",
        "model.heads=2",
        "trainer.max_epochs=1",
        "callbacks.attention_images.every_n_epochs=5",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    proc = run("evaluate.py", f"ckpt_path={ckpt}", "+data.ignore_border=true", f"hydra.run.dir={tmp_path / 'eval'}")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["ignore_index"] == 255 and metrics["num_images"] == 4
    assert "Scoring follows the data" in proc.stdout + proc.stderr


def test_evaluate_refuses_a_checkpoint_with_a_pickled_payload(smoke_run, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = torch.load(smoke_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["payload"] = _Payload(marker)
    bad = tmp_path / "bad.ckpt"
    torch.save(checkpoint, bad, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    proc = run("evaluate.py", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'eval'}", check=False)
    assert proc.returncode == 2
    assert "refused to load" in proc.stderr + proc.stdout
    assert str(bad) in proc.stderr + proc.stdout
    assert not marker.exists()
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_training_without_data_says_where_and_how(tmp_path):
    missing = tmp_path / "nowhere"
    proc = run(
        "train.py", "experiment=pets_binary", f"data.root={missing}", f"hydra.run.dir={tmp_path / 'run'}", check=False
    )
    assert proc.returncode == 2
    text = proc.stderr + proc.stdout
    assert str(missing) in text and "data.download=true" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_two_process_cpu_ddp_run_finishes_with_synchronised_metrics(tmp_path):
    run_dir = tmp_path / "ddp"
    run(
        "train.py",
        "experiment=smoke",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "data.num_val=7",
        f"hydra.run.dir={run_dir}",
    )
    best = run_dir / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    # 16 training images over 2 processes with batch 4: 2 optimizer steps per epoch.
    assert ckpt["global_step"] == 2
    logged = [v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint")][0]["best_model_score"]
    # The logged val/dice covers the whole validation set, each of its 7 images once (none repeated
    # to even out the two processes' shares): it equals a single-process evaluation.
    run("evaluate.py", f"ckpt_path={best}", "split=val", f"hydra.run.dir={tmp_path / 'eval'}")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_images"] == 7
    assert float(logged) == pytest.approx(metrics["dice"]["mean"], abs=1e-5)


def test_multirun_sweeps_the_four_ablations(tmp_path):
    sweep = tmp_path / "sweep"
    run(
        "train.py",
        "-m",
        "experiment=smoke",
        "model.self_attention=false,true",
        "model.cross_attention=false,true",
        "trainer.max_epochs=1",
        "callbacks.attention_images=null",
        f"hydra.sweep.dir={sweep}",
    )
    seen = set()
    for job in range(4):
        ckpt = torch.load(sweep / str(job) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        net = ckpt["hyper_parameters"]["net"]
        seen.add((net["self_attention"], net["cross_attention"]))
        assert ckpt["global_step"] == 4
        has_attention = any(k.startswith(("net.self_attention", "net.cross_attention")) for k in ckpt["state_dict"])
        assert has_attention == (net["self_attention"] or net["cross_attention"])
    assert seen == {(False, False), (False, True), (True, False), (True, True)}

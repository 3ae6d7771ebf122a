"""segattn.cli.train (train.py): runs and what they write, and the inputs refused before training starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segattn.cli.train import check_run_directory
from segattn.errors import RunDirectoryError
from tests.helpers.commands import refused, run
from tests.helpers.files import folder


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
    assert {"train/lr/weights", "train/lr/norms_and_biases"} <= set(tags["scalars"])
    assert any(t.startswith("val_images/1_predictions/") for t in tags["images"])
    assert any(t.startswith("val_images/3_mhsa/") for t in tags["images"])
    assert any(t.startswith("val_images/4_gates/") for t in tags["images"])
    ckpt = torch.load(smoke_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 2 * 4  # 16 images / batch 4, 2 epochs


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


FOLDER = [
    "data=folder",
    "data.image_size=16",
    "data.batch_size=2",
    "model.depth=2",
    "model.base_channels=8",
    "model.heads=2",
    "trainer.max_epochs=1",
    "callbacks.attention_images=null",
    "trainer.enable_progress_bar=false",
]


def test_3_4_bad_files_stop_training_before_it_starts_and_a_val_set_without_foreground_is_named(tmp_path):
    root = folder(tmp_path / "d", value=1, n=4)
    (root / "train" / "images" / "train1.png").write_text("a text file, not an image")
    proc = run(
        "train.py",
        *FOLDER,
        f"data.root={root}",
        "data.mask_mapping={0:0,1:1}",
        "data.num_workers=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    refused(proc, "1 of the 8 samples cannot be used", "train1.png", "check_data=false")
    assert not (tmp_path / "run" / "checkpoints").exists()

    (root / "train" / "images" / "train1.png").unlink()
    (root / "train" / "masks" / "train1.png").unlink()
    for mask in (root / "val" / "masks").iterdir():
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(mask)
    proc = run(
        "train.py",
        *FOLDER,
        f"data.root={root}",
        "data.mask_mapping={0:0,1:1}",
        f"hydra.run.dir={tmp_path / 'run2'}",
        check=False,
    )
    refused(proc, "val split's masks hold none of the scored classes ['class_1']")
    # Without the check the run still keeps a best.ckpt (val/dice is logged as NaN, not missing).
    run(
        "train.py",
        *FOLDER,
        f"data.root={root}",
        "data.mask_mapping={0:0,1:1}",
        "check_data=false",
        f"hydra.run.dir={tmp_path / 'run3'}",
    )
    assert (tmp_path / "run3" / "checkpoints" / "best.ckpt").is_file()


def test_4_a_worker_error_is_the_clean_message(tmp_path):
    root = folder(tmp_path / "d", value=1, n=4)
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(root / "train" / "masks" / "train2.png")
    proc = run(
        "train.py",
        *FOLDER,
        f"data.root={root}",
        "data.mask_mapping={0:0,1:1}",
        "check_data=false",
        "data.num_workers=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        check=False,
    )
    text = refused(proc, "train2.png holds values [7] that the mask mapping does not cover")
    assert "Original Traceback" not in text and "DataLoader worker" not in text


def test_existing_run_directory_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    check_run_directory(run_dir, None)  # new: fine
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        check_run_directory(run_dir, None)
    check_run_directory(run_dir, str(run_dir / "checkpoints" / "last.ckpt"))  # resuming that run: fine
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"x"


def test_unwritable_run_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(RunDirectoryError, match="not writable"):
        check_run_directory(blocker / "run", None)


def test_model_channels_and_classes_come_from_the_data_and_a_different_value_is_refused():
    from omegaconf import OmegaConf

    from segattn.cli.train import network_kwargs
    from segattn.errors import ConfigError

    model = OmegaConf.create(
        {"_target_": "segattn.models.UNetAttention", "in_channels": None, "num_classes": None, "depth": 2}
    )
    assert network_kwargs(model, 1, 3) == {"in_channels": 1, "num_classes": 3, "depth": 2}
    model.num_classes = 5
    with pytest.raises(ConfigError, match=r"model.num_classes: got 5, but the data has 3; leave it null"):
        network_kwargs(model, 1, 3)
    model.num_classes = 3
    assert network_kwargs(model, 1, 3)["num_classes"] == 3  # the same value is only checked

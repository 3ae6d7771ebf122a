"""segattn.cli.evaluate (evaluate.py): its metrics, ignored pixels, and the checkpoints and splits it refuses."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.commands import refused, run
from tests.helpers.files import folder


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


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


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


def test_8_12_13_evaluate_and_predict_refuse_cleanly(smoke_run, tmp_path):
    refused(
        run("evaluate.py", f"hydra.run.dir={tmp_path / 'e1'}", check=False),
        "missing required setting ckpt_path",
        "ckpt_path=<run dir>/checkpoints/best.ckpt",
    )
    refused(
        run(
            "segattn-predict",
            f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
            f"hydra.run.dir={tmp_path / 'p1'}",
            check=False,
        ),
        "missing required setting input_dir",
    )
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("data:\n  root: x\n")
    refused(
        run("evaluate.py", f"ckpt_path={yaml_file}", f"hydra.run.dir={tmp_path / 'e2'}", check=False),
        f"{yaml_file}: not a checkpoint: it is a text file",
    )

    # A checkpoint trained on a folder dataset that has no test/: the default split is empty.
    root = folder(tmp_path / "d", value=1)
    checkpoint = torch.load(smoke_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["config"]["data"] = {
        "_target_": "segattn.data.FolderDataModule",
        "root": str(root),
        "mask_mapping": {0: 0, 1: 1},
        "image_size": 32,
        "batch_size": 2,
        "class_names": checkpoint["hyper_parameters"]["class_names"],
    }
    ckpt = tmp_path / "folder.ckpt"
    torch.save(checkpoint, ckpt)
    refused(
        run("evaluate.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e3'}", check=False),
        "split=test: the test split of this data is empty",
        "splits with images: val (3 images), e.g. split=val",
    )
    run("evaluate.py", f"ckpt_path={ckpt}", "split=val", f"hydra.run.dir={tmp_path / 'e4'}")
    assert json.loads((tmp_path / "e4" / "metrics.json").read_text())["num_images"] == 3

"""Issue 11, as a user meets it: bad inputs to train.py, evaluate.py and segattn-predict end with
exit code 2, one message, no traceback, and nothing overwritten; DDP edge cases run through."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from tests.test_bad_inputs import folder
from tests.test_cli import run

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


def refused(proc, *expected: str) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    for part in expected:
        assert part in text, (part, text[-3000:])
    return text


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


def test_14_15_16_run_and_output_directories_are_never_replaced(smoke_run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    refused(
        run("train.py", "experiment=smoke", f"hydra.run.dir={blocker / 'run'}", check=False),
        "is a file, so no folder can be made under it",
    )

    overrides = (smoke_run / ".hydra" / "overrides.yaml").read_text()
    hydra_config = (smoke_run / ".hydra" / "config.yaml").read_text()
    refused(
        run("train.py", "experiment=smoke", "seed=7", f"hydra.run.dir={smoke_run}", check=False),
        "nothing was overwritten",
    )
    refused(
        run(
            "evaluate.py",
            f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
            f"hydra.run.dir={smoke_run}",
            check=False,
        ),
        "already holds a run",
    )
    assert (smoke_run / ".hydra" / "overrides.yaml").read_text() == overrides
    assert (smoke_run / ".hydra" / "config.yaml").read_text() == hydra_config

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(images / "cat.jpg")
    Image.fromarray(np.full((20, 30, 3), 200, dtype=np.uint8)).save(images / "cat.png")
    out = tmp_path / "out"
    ckpt = f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}"
    run("segattn-predict", ckpt, f"input_dir={images}", f"output_dir={out}", f"hydra.run.dir={tmp_path / 'p1'}")
    assert sorted(p.name for p in out.glob("*_mask.png")) == ["cat_jpg_mask.png", "cat_png_mask.png"]
    before = (out / "cat_jpg_mask.png").read_bytes()
    refused(
        run(
            "segattn-predict",
            ckpt,
            f"input_dir={images}",
            f"output_dir={out}",
            f"hydra.run.dir={tmp_path / 'p2'}",
            check=False,
        ),
        "already holds 4 of the files this run would write",
        "nothing was overwritten",
    )
    assert (out / "cat_jpg_mask.png").read_bytes() == before
    refused(
        run(
            "segattn-predict",
            ckpt,
            f"input_dir={images}",
            f"output_dir={images}",
            f"hydra.run.dir={tmp_path / 'p3'}",
            check=False,
        ),
        "is the input_dir",
    )
    refused(
        run(
            "segattn-predict",
            ckpt,
            f"input_dir={images}",
            f"output_dir={images / 'cat.png'}",
            f"hydra.run.dir={tmp_path / 'p4'}",
            check=False,
        ),
        "is a file, not a folder",
    )
    assert sorted(p.name for p in images.iterdir()) == ["cat.jpg", "cat.png"]

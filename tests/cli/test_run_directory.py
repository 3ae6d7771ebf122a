"""segattn.cli.run_directory: run and output directories are checked before Hydra writes and never replaced."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segattn.cli.run_directory import check_before_hydra, writable_problem
from segattn.errors import RunDirectoryError
from tests.helpers.commands import refused, run


def test_14_an_unusable_run_directory_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert writable_problem(blocker) == f"{blocker} is a file, not a folder"
    assert writable_problem(blocker / "run") == f"{blocker} is a file, so no folder can be made under it"
    assert writable_problem(tmp_path / "new" / "run") is None
    with pytest.raises(
        RunDirectoryError, match=r"hydra.run.dir=.*file/run: .* is a file, so no folder can be made under it"
    ):
        check_before_hydra([f"hydra.run.dir={blocker / 'run'}"], "train")


def test_15_a_folder_holding_a_run_is_refused_before_hydra_touches_it(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "tensorboard").mkdir()
    with pytest.raises(RunDirectoryError) as info:  # died before its first checkpoint
        check_before_hydra([f"hydra.run.dir={run}", "experiment=smoke"], "train")
    assert "nothing was overwritten" in str(info.value) and "ckpt_path=" not in str(info.value)
    assert "holds no checkpoints/last.ckpt" in str(info.value)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match=f"resume that run with ckpt_path={run / 'checkpoints' / 'last.ckpt'}"):
        check_before_hydra([f"hydra.run.dir={run}"], "train")
    check_before_hydra(
        [f"hydra.run.dir={run}", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], "train"
    )  # resuming it: fine
    with pytest.raises(
        RunDirectoryError, match="evaluate.py and segattn-predict write their results into a run directory of their own"
    ):
        check_before_hydra([f"hydra.run.dir={run}", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], "evaluate")
    check_before_hydra([f"hydra.run.dir={tmp_path / 'new'}"], "evaluate")
    check_before_hydra(["-m", f"hydra.run.dir={run}"], "train")  # sweeps write to hydra.sweep.dir


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

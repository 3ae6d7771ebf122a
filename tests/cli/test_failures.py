"""Commands under bad command lines, busy folders, full disks, damaged files and odd images: each ends with
one message and exit code 2 (or works), and nothing the user had is lost."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers.commands import refused, run
from tests.helpers.files import folder
from tests.helpers.paths import ROOT


def run_on_a_disk_that_fills(tmp_path, suffix: str, failing: int, command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` with its ``failing``-th and later renames onto ``*<suffix>`` failing as on a
    full disk (ENOSPC), through a ``sitecustomize`` hook in the child process only."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(
        "import errno, os\n_real, _count = os.replace, [0]\n"
        "def _replace(src, dst, *a, **k):\n"
        f"    if str(dst).endswith({suffix!r}):\n"
        "        _count[0] += 1\n"
        f"        if _count[0] >= {failing}:\n"
        "            raise OSError(errno.ENOSPC, 'No space left on device', str(dst))\n"
        "    return _real(src, dst, *a, **k)\n"
        "os.replace = _replace\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


SMOKE = ["experiment=smoke", "trainer.enable_progress_bar=false", "callbacks.attention_images=null"]


def test_unreadable_command_lines_are_one_message(tmp_path):
    refused(run("train.py", "data.root=/my", "data", check=False), "cannot read the command line", "quote a value")
    refused(run("train.py", "key=[1,2", check=False), "cannot read the command line")
    refused(run("train.py", "--config-name", "nope", check=False), "--config-name=nope: no such config", "available:")


def test_a_sweep_whose_member_cannot_run_starts_none(tmp_path):
    sweep = tmp_path / "sweep"
    text = refused(
        run("train.py", "-m", *SMOKE, "model.heads=2,3", f"hydra.sweep.dir={sweep}", check=False),
        "1 member(s) of the sweep cannot run; none was started",
        "member 1 (",
        "model.heads=3",
    )
    assert "model.heads: got 3" in text
    assert not (sweep / "0" / "checkpoints").exists() and not (sweep / "multirun.yaml").exists()


def test_a_sweep_folder_that_holds_a_sweep_is_refused_before_hydra_rewrites_it(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("seed: 1\n")
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    refused(
        run("train.py", "-m", *SMOKE, "seed=3", f"hydra.sweep.dir={sweep}", check=False),
        f"hydra.sweep.dir={sweep}: the folder already holds files",
        "Choose another hydra.sweep.dir",
    )
    assert (sweep / "multirun.yaml").read_text() == "seed: 1\n"
    assert (sweep / "0" / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"


def test_a_second_run_into_a_folder_a_live_run_holds_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "train.py", *SMOKE, "trainer.max_epochs=50", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not (run_dir / ".segattn.lock").exists() and time.time() < deadline:
            time.sleep(0.1)
        text = refused(run("train.py", *SMOKE, f"hydra.run.dir={run_dir}", check=False), "a live run holds this folder")
        assert f"process {first.pid}" in text and "ended before its first checkpoint" not in text
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run's lock is stale: the folder is refused for what it holds, not for a live run
    text = refused(run("train.py", *SMOKE, f"hydra.run.dir={run_dir}", check=False), "already holds a run")
    assert "a live run" not in text


def test_training_checks_devices_lengths_and_limits_up_front(tmp_path):
    if not __import__("torch").cuda.is_available():
        refused(
            run("train.py", *SMOKE, "trainer=gpu", f"hydra.run.dir={tmp_path / 'g'}", check=False),
            "torch sees no CUDA GPU",
            "trainer=cpu",
        )
    refused(
        run("train.py", *SMOKE, "trainer.max_epochs=0", f"hydra.run.dir={tmp_path / 'e'}", check=False),
        "trainer.max_epochs: got 0",
    )
    refused(
        run("train.py", *SMOKE, "trainer.limit_train_batches=0", f"hydra.run.dir={tmp_path / 'l'}", check=False),
        "trainer.limit_train_batches: got 0",
        "no training",
    )
    assert not (tmp_path / "e" / "checkpoints").exists()
    run(
        "train.py",
        *SMOKE,
        "trainer.limit_val_batches=1",
        "trainer.limit_train_batches=2",
        f"hydra.run.dir={tmp_path / 'ok'}",
    )
    assert (tmp_path / "ok" / "checkpoints" / "best.ckpt").is_file()


def test_a_mask_mapping_to_more_classes_than_configured_is_one_message(tmp_path):
    root = folder(tmp_path / "data", value=255)
    refused(
        run(
            "train.py",
            *SMOKE,
            "data=folder",
            f"data.root={root}",
            "data.image_size=16",
            "data.mask_mapping={0:0,255:5}",
            "data.num_classes=2",
            f"hydra.run.dir={tmp_path / 'r'}",
            check=False,
        ),
        "data: data.mask_mapping maps to class ids [0, 5], outside 0..1 (data.num_classes=2)",
    )


def test_evaluate_checks_its_data_overrides_as_training_does(tmp_path, smoke_run):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    for override, expected in (
        ("data.batch_size=0", "data.batch_size: got 0"),
        ("data.num_workers=-1", "data.num_workers: got -1"),
        ("data.max_samples=0", "data.max_samples: got 0"),
        ("data.image_size=30", "data.image_size: got 30; must be a multiple of 2**depth = 4"),
    ):
        folder = tmp_path / override.split("=")[0]
        refused(run("evaluate.py", f"ckpt_path={ckpt}", override, f"hydra.run.dir={folder}", check=False), expected)


def test_a_bit_flipped_checkpoint_is_named_by_every_command(tmp_path, smoke_run):
    import zipfile

    good = smoke_run / "checkpoints" / "best.ckpt"
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        member = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    bad = tmp_path / "flipped.ckpt"
    bad.write_bytes(data)
    images = folder(tmp_path / "imgs", splits=("x",)) / "x" / "images"
    for command, args in (
        ("evaluate.py", [f"hydra.run.dir={tmp_path / 'e'}"]),
        (
            "segattn-predict",
            [f"input_dir={images}", f"output_dir={tmp_path / 'p'}", f"hydra.run.dir={tmp_path / 'pr'}"],
        ),
        ("segattn-export", [f"output={tmp_path / 'm.pt'}", "format=torchscript", f"hydra.run.dir={tmp_path / 'x'}"]),
        ("train.py", [*SMOKE, f"init_from={bad}", f"hydra.run.dir={tmp_path / 't'}"]),
    ):
        key = [] if command == "train.py" else [f"ckpt_path={bad}"]
        refused(run(command, *key, *args, check=False), "flipped.ckpt", "does not match its checksum")


def test_predict_into_an_unwritable_folder_is_refused_before_the_model_loads(tmp_path, smoke_run, monkeypatch):
    from segattn import files
    from segattn.cli import predict as predict_cli

    images = folder(tmp_path / "imgs", splits=("x",)) / "x" / "images"
    monkeypatch.setattr(
        files.tempfile, "NamedTemporaryFile", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "ro"))
    )
    monkeypatch.setattr(predict_cli, "load_checkpoint", lambda *a: pytest.fail("the model was loaded"))
    from segattn.errors import RunDirectoryError

    with pytest.raises(RunDirectoryError, match="the file system is read-only"):
        predict_cli.check_output_dir(images, tmp_path / "out", ["x0_mask.png"])


def test_a_full_disk_during_predict_leaves_no_partial_mask(tmp_path, smoke_run):
    images = folder(tmp_path / "imgs", splits=("x",), n=3) / "x" / "images"
    out = tmp_path / "out"
    # the second mask fails as on a full disk (the sitecustomize hook patches os.replace in the child)
    proc = run_on_a_disk_that_fills(
        tmp_path,
        "_mask.png",
        2,
        [
            os.path.join(os.path.dirname(sys.executable), "segattn-predict"),
            f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
            f"input_dir={images}",
            f"output_dir={out}",
            "overlay=false",
            f"hydra.run.dir={tmp_path / 'pr'}",
        ],
    )
    refused(proc, "no space left on the device", "x1_mask.png")
    assert sorted(p.name for p in out.iterdir()) == ["x0_mask.png"]  # complete files only: no 0-byte, no temporary
    run(
        "segattn-predict",
        f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
        f"input_dir={images}",
        f"output_dir={tmp_path / 'out2'}",
        f"hydra.run.dir={tmp_path / 'pr2'}",
    )


def test_a_full_disk_during_training_is_one_message_and_keeps_the_checkpoints(tmp_path):
    """Epoch 0's checkpoints are written; the disk fills at the first save of epoch 1."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", *SMOKE, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"]
    proc = run_on_a_disk_that_fills(tmp_path, ".ckpt", 3, command)
    text = refused(proc, "no space left on the device", ".ckpt")
    assert text.count("Error") <= 2, text[-2000:]
    from segattn.checkpoint import load_checkpoint

    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert saved == ["best.ckpt", "last.ckpt"]  # epoch 0's, complete; no temporary file left
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] in (0, 1)


def test_ctrl_c_during_predict_is_one_message(tmp_path, smoke_run):
    # enough images that the signal, sent at the first mask, arrives before the last one even on a busy machine
    images = folder(tmp_path / "imgs", splits=("x",), n=200, size=(256, 256)) / "x" / "images"
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "segattn-predict"),
            f"ckpt_path={smoke_run / 'checkpoints' / 'best.ckpt'}",
            f"input_dir={images}",
            f"output_dir={tmp_path / 'out'}",
            "inference.tta=true",
            f"hydra.run.dir={tmp_path / 'pr'}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not list((tmp_path / "out").glob("*_mask.png")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    text = out + err
    assert proc.returncode == 2 and "Traceback" not in text and "interrupted (Ctrl-C)" in text, text[-2000:]
    masks = list((tmp_path / "out").iterdir())
    assert 0 < len(masks) < 200 and all(p.stat().st_size > 0 for p in masks)


def test_predict_prints_no_warnings_for_a_checkpoint_or_an_onnx_model(tmp_path, smoke_run):
    model = tmp_path / "m.onnx"
    checkpoint = smoke_run / "checkpoints" / "best.ckpt"
    run(
        "segattn-export", f"ckpt_path={checkpoint}", "format=onnx", f"output={model}", f"hydra.run.dir={tmp_path / 'x'}"
    )
    images = folder(tmp_path / "imgs", splits=("x",)) / "x" / "images"
    for name, ckpt in (
        ("ckpt", checkpoint),
        ("onnx", model),
    ):  # overlays from read-only image arrays, onnxruntime's outputs
        proc = run(
            "segattn-predict",
            f"ckpt_path={ckpt}",
            f"input_dir={images}",
            f"output_dir={tmp_path / name}",
            f"hydra.run.dir={tmp_path / ('run-' + name)}",
            env={"PYTHONWARNINGS": "default"},
        )
        assert "not writable" not in proc.stderr and "UserWarning" not in proc.stderr, proc.stderr[-2000:]


def test_a_huge_image_names_the_setting_and_predicts_with_it(tmp_path, smoke_run):
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(images / "big.png")
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    refused(
        run(
            "segattn-predict",
            f"ckpt_path={ckpt}",
            f"input_dir={images}",
            f"output_dir={tmp_path / 'a'}",
            "inference.max_pixels=1000",
            f"hydra.run.dir={tmp_path / 'ra'}",
            check=False,
        ),
        "64×64 = 4,096 pixels",
        "inference.max_pixels=4096",
    )
    run(
        "segattn-predict",
        f"ckpt_path={ckpt}",
        f"input_dir={images}",
        f"output_dir={tmp_path / 'b'}",
        "inference.max_pixels=5000",
        "inference.mode=sliding_window",
        f"hydra.run.dir={tmp_path / 'rb'}",
    )
    assert (tmp_path / "b" / "big_mask.png").is_file()


def test_an_image_in_a_format_segattn_does_not_read_is_named(tmp_path):
    root = folder(tmp_path / "data")
    (root / "train" / "images" / "train0.png").rename(root / "train" / "images" / "train0.heic")
    from segattn.data import FolderDataModule
    from segattn.errors import DatasetContentError

    with pytest.raises(DatasetContentError, match=r"train0\.heic.*readable: .*\.webp"):
        FolderDataModule(root=str(root), image_size=16).setup("fit")


def test_webp_folders_train(tmp_path):
    root = folder(tmp_path / "data", value=255)
    for path in list(root.rglob("images/*.png")):
        Image.open(path).save(path.with_suffix(".webp"), lossless=True)
        path.unlink()
    run(
        "train.py",
        *SMOKE,
        "data=folder",
        f"data.root={root}",
        "data.image_size=16",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert (tmp_path / "r" / "checkpoints" / "best.ckpt").is_file()

"""Issue 11, in-process: each bad input of the second reliability round is refused up front with
one message naming the file, key or value and what is allowed (the commands' exit codes are in
tests/test_bad_commands.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from segattn.checkpoint import load_checkpoint
from segattn.cli.common import check_classes_match, clean_message
from segattn.cli.predict import check_output_dir, output_names
from segattn.cli.run_directory import check_before_hydra, writable_problem
from segattn.config.validation import fitted_problems, valid_sizes_text
from segattn.data import FolderDataModule, SyntheticDataModule
from segattn.data.checks import check_samples, scored_classes_problem
from segattn.data.resumable_loader import ResumableSampler, ShardSampler
from segattn.errors import CheckpointError, DatasetContentError, RunDirectoryError
from segattn.training.losses import SegmentationLoss
from segattn.training.module import SegmentationModule
from tests.test_reliability import compose_train, problems_of


def folder(root: Path, splits=("train", "val"), n: int = 3, value: int = 1, size=(16, 16)) -> Path:
    """A pre-split folder dataset with 0/``value`` masks (a square of foreground)."""
    for split in splits:
        for i in range(n):
            mask = np.zeros(size, dtype=np.uint8)
            mask[4:10, 4:10] = value
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.stack([mask * 50] * 3, axis=-1)).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}{i}.png")
    return root


# --- 1. mask mappings ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "++"])
def test_1_a_mask_mapping_given_replaces_the_default(tmp_path, prefix):
    root = folder(tmp_path / "d", value=1)
    cfg = compose_train(
        "data=folder", f"data.root={root}", f"{prefix}data.mask_mapping={{0:0,1:1}}", "data.num_workers=0"
    )
    assert dict(cfg.data.mask_mapping) == {0: 0, 1: 1}  # 255 is not kept from a default
    dm = instantiate(cfg.data)
    assert dm.num_classes == 2
    check_samples(dm, ("train", "val"))  # 0/1 masks load


# --- 2, 5, 6. settings that need the data --------------------------------------------------------


def test_2_an_empty_validation_split_is_refused_naming_the_fix(tmp_path):
    root = folder(tmp_path / "d", splits=("train",))
    cfg = compose_train("data=folder", f"data.root={root}")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert (
        "the validation split is empty" in problems and "best.ckpt" in problems and f"{root / 'val'}/images" in problems
    )
    cfg = compose_train("data=folder", f"data.root={tmp_path / 'unsplit'}", "data.val_fraction=0")
    flat = tmp_path / "unsplit"
    for i in range(4):
        (flat / "images").mkdir(parents=True, exist_ok=True), (flat / "masks").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(flat / "images" / f"{i}.png")
        Image.new("L", (8, 8)).save(flat / "masks" / f"{i}.png")
    assert "set data.val_fraction to a fraction > 0" in "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))


def test_2_an_empty_training_split_is_refused(tmp_path):
    """Two image pairs and the default fractions: validation and test take one each, training none."""
    flat = tmp_path / "two"
    (flat / "images").mkdir(parents=True), (flat / "masks").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(flat / "images" / f"{i}.png")
        Image.new("L", (8, 8)).save(flat / "masks" / f"{i}.png")
    cfg = compose_train("data=folder", f"data.root={flat}")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "the training split is empty (val 1, test 1 images)" in problems and "data.val_fraction" in problems


def test_5_type_errors_and_class_weights_get_the_up_front_message():
    message = problems_of("data.image_size=64.5", "data.batch_size=abc")
    assert "data.image_size: got 64.5 (float); expected int" in message
    assert "data.batch_size: got 'abc' (str); expected int" in message
    cfg = compose_train("module.class_weights=[1.0]")
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "module.class_weights: got 1 values [1.0]; the data has 2 classes ['background', 'shape_1']" in problems


def test_6_a_single_image_batch_at_a_1x1_bottleneck_is_refused_and_sizes_are_named_once():
    cfg = compose_train(
        "model.depth=5", "data.image_size=32", "data.num_train=17", "model.base_channels=4", "model.heads=1"
    )
    problems = "\n".join(fitted_problems(cfg, instantiate(cfg.data), 1))
    assert "1x1 bottleneck" in problems and "data.image_size >= 64" in problems
    assert "9 training images per process" in "\n".join(
        fitted_problems(cfg, instantiate(cfg.data), 2)
    )  # counted per process
    cfg = compose_train(
        "model.depth=5", "data.image_size=32", "data.num_train=16", "model.base_channels=4", "model.heads=1"
    )
    assert not fitted_problems(cfg, instantiate(cfg.data), 1)  # batches of 4 only: fine
    assert valid_sizes_text(64, 256) == "256" and valid_sizes_text(30, 4) == "28 or 32"
    assert "256 or 256" not in problems_of("model.depth=8", "data.image_size=64")


# --- 3, 4. every file read before training ---------------------------------------------------------


def test_3_validation_masks_without_foreground_are_named(tmp_path):
    root = folder(tmp_path / "d", value=1)
    for mask in (root / "val" / "masks").iterdir():
        Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(mask)
    dm = FolderDataModule(root=str(root), mask_mapping={0: 0, 1: 1}, image_size=16)
    present = check_samples(dm, ("train", "val"))
    assert present == {"train": {0, 1}, "val": {0}}
    message = scored_classes_problem(present["val"], dm, include_background=False)
    assert "val split's masks hold none of the scored classes ['class_1']" in message
    assert scored_classes_problem(present["train"], dm, include_background=False) is None


def test_4_every_bad_file_is_named_before_training(tmp_path):
    root = folder(tmp_path / "d", value=1, n=4)
    images = root / "train" / "images"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(images / "train0.jpg")
    (images / "train0.png").unlink()
    (images / "train0.jpg").write_bytes((images / "train0.jpg").read_bytes()[:60])  # truncated JPEG
    (images / "train1.png").unlink()
    (images / "train1.jpg").write_text("not an image")  # a text file named .jpg
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(
        root / "val" / "masks" / "val2.png"
    )  # value outside the mapping
    dm = FolderDataModule(root=str(root), mask_mapping={0: 0, 1: 1}, image_size=16)
    with pytest.raises(DatasetContentError) as info:
        check_samples(dm, ("train", "val"), workers=2)
    message = str(info.value)
    assert "3 of the 8 samples cannot be used" in message
    for name in ("train0.jpg", "train1.jpg", "val2.png"):
        assert name in message
    assert "values [7]" in message and "check_data=false" in message


class _Failing(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise DatasetContentError("cannot read image file /x/broken.jpg: truncated")


def test_4_an_error_from_a_loader_worker_keeps_its_own_message():
    loader = torch.utils.data.DataLoader(_Failing(), num_workers=1)
    with pytest.raises(DatasetContentError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # what a worker error looks like
    assert clean_message(info.value) == "cannot read image file /x/broken.jpg: truncated"


# --- 7. an all-ignored batch ----------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5]])
def test_7_a_batch_whose_pixels_are_all_ignored_has_a_finite_zero_gradient_loss(weights):
    loss = SegmentationLoss("ce+dice", 3, weights, ignore_index=2)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    value = loss(logits, torch.full((2, 8, 8), 2))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(logits.grad).all() and logits.grad.abs().max() == 0
    target = torch.randint(0, 3, (2, 8, 8))  # and otherwise the usual weighted mean
    expected = torch.nn.functional.cross_entropy(
        logits, target, weight=None if weights is None else torch.tensor(weights), ignore_index=2
    )
    torch.testing.assert_close(loss.cross_entropy(logits, target), expected)


# --- 8, 9. checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,kind",
    [
        ("notes.txt", b"just some notes\n", "a text file"),
        ("config.yaml", b"data:\n  root: x\n", "a text file"),
        ("metrics.json", b'{"dice": 0.5}', "a JSON file"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(40), "a PNG image"),
        ("empty.ckpt", b"", "empty"),
    ],
)
def test_8_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"{path}: not a checkpoint: it is {kind}" in message and "pickled" not in message


def test_9_classes_of_checkpoint_and_data_must_agree():
    checkpoint = {"hyper_parameters": {"class_names": ["background", "pet"], "net": {"in_channels": 3}}}
    trimap = SimpleNamespace(class_names=["background", "pet", "border"], in_channels=3)
    with pytest.raises(
        CheckpointError,
        match=r"trained on the classes \['background', 'pet'\], but the data as configured has \['background', 'pet', 'border'\]",
    ):
        check_classes_match(checkpoint, trimap, "b.ckpt")
    checkpoint["hyper_parameters"]["class_names"] = trimap.class_names
    check_classes_match(checkpoint, trimap, "t.ckpt")
    with pytest.raises(CheckpointError, match="trained on the classes"):
        check_classes_match(checkpoint, SimpleNamespace(class_names=["background", "pet"], in_channels=3), "t.ckpt")


# --- 11. the schedule's length ------------------------------------------------------------------------


def _steps(max_epochs, max_steps, num_train=16, world_size=1):
    module = SegmentationModule(net=dict(depth=2, base_channels=8, heads=2), class_names=["a", "b"])
    data = SyntheticDataModule(image_size=32, batch_size=4, num_train=num_train)
    module._trainer = SimpleNamespace(
        datamodule=data,
        max_steps=max_steps,
        max_epochs=max_epochs,
        world_size=world_size,
        limit_train_batches=1.0,
        accumulate_grad_batches=1,
    )
    return module.total_training_steps()


def test_11_the_schedule_spans_whichever_limit_ends_the_run_first():
    assert _steps(max_epochs=2, max_steps=100) == 8  # 4 steps per epoch: the epochs end it
    assert _steps(max_epochs=20, max_steps=10) == 10
    assert _steps(max_epochs=-1, max_steps=10) == 10 and _steps(max_epochs=None, max_steps=10) == 10
    assert _steps(max_epochs=3, max_steps=-1, num_train=17, world_size=2) == 3 * 3  # 9 per process: 3 batches
    assert (
        "trainer.max_epochs: got -1 (no limit) and trainer.max_steps is not set, but module.scheduler=onecycle"
        in problems_of("trainer.max_epochs=-1")
    )
    assert "trainer.max_epochs: got null; expected an integer >= 1" in problems_of("trainer.max_epochs=null")
    for ok in (["trainer.max_epochs=-1", "+trainer.max_steps=10"], ["trainer.max_epochs=-1", "module.scheduler=none"]):
        from segattn.config import validate_train_config

        validate_train_config(compose_train(*ok))


# --- 14, 15. run directories, checked before Hydra writes into them ------------------------------------


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


# --- 16. predictions never replace files -------------------------------------------------------------------


def test_16_outputs_are_unique_and_never_replace_files(tmp_path):
    images = [tmp_path / "cat.jpg", tmp_path / "cat.png", tmp_path / "dog.png"]
    assert output_names(images) == {images[0]: "cat_jpg", images[1]: "cat_png", images[2]: "dog"}
    # Extensions differing only in case, and a stem that is another image's derived name.
    clash = [
        tmp_path / "cat.png",
        tmp_path / "cat.PNG",
        tmp_path / "cat_png.jpg",
        tmp_path / "Dog.png",
        tmp_path / "dog.jpg",
    ]
    names = output_names(clash)
    assert len({n.lower() for n in names.values()}) == len(clash)  # every mask its own file, even ignoring case
    assert names[clash[2]] == "cat_png" and {names[clash[0]], names[clash[1]]} == {"cat_png_2", "cat_png_3"}
    assert {names[clash[3]], names[clash[4]]} == {"Dog_png", "dog_jpg"}
    out = tmp_path / "out"
    out.mkdir()
    (out / "dog_mask.png").write_bytes(b"keep")
    with pytest.raises(
        FileExistsError,
        match=r"already holds 1 of the files this run would write \(first: dog_mask.png\); nothing was overwritten",
    ):
        check_output_dir(tmp_path, out, ["cat_jpg_mask.png", "dog_mask.png"])
    with pytest.raises(FileExistsError, match="is the input_dir"):
        check_output_dir(tmp_path, tmp_path / ".", [])
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        check_output_dir(tmp_path, out / "dog_mask.png", [])
    assert (out / "dog_mask.png").read_bytes() == b"keep"


# --- 17, 19. several processes ---------------------------------------------------------------------


def test_17_evaluation_shards_count_every_image_once():
    shards = [list(ShardSampler(7, 2, rank)) for rank in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(7)) and [len(s) for s in shards] == [4, 3]


def test_19_each_process_resumes_its_own_share_mid_epoch():
    def share(rank, resume=None):
        sampler = ResumableSampler(10, seed=3, num_replicas=2, rank=rank)
        sampler.set_epoch(1)
        if resume is not None:
            sampler.resume_from(1, resume)
        return list(sampler)

    full = [share(0), share(1)]
    assert len(full[0]) == len(full[1]) == 5 == len(ResumableSampler(10, num_replicas=2))
    assert sorted(i for _, i in full[0] + full[1]) == list(range(10))
    # Two batches of 2 done on each process: each skips its own first 4 samples, not 4 of the whole.
    assert share(0, resume=4) == full[0][4:] and share(1, resume=4) == full[1][4:]


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

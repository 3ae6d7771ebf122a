"""segattn.cli.predict (segattn-predict): masks at the original size, unique output names, nothing replaced."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segattn.cli.predict import check_output_dir, output_names
from tests.helpers.commands import run


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

"""Output files written through a temporary name: a failed write leaves nothing under the name."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from PIL import Image

from segattn import files
from segattn.files import disk_error_message, is_disk_error, save_png, writable_folder_problem, write_text


def test_a_write_that_fails_leaves_neither_a_partial_file_nor_a_temporary_one(tmp_path, monkeypatch):
    write_text(tmp_path / "metrics.json", "old")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError) as info:
        save_png(tmp_path / "mask.png", np.zeros((4, 4), dtype=np.uint8))
    assert not (tmp_path / "mask.png").exists()
    with pytest.raises(OSError):
        write_text(tmp_path / "metrics.json", "new")
    assert (tmp_path / "metrics.json").read_text() == "old"  # the complete old file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left
    assert is_disk_error(info.value)
    message = disk_error_message(info.value)
    assert "no space left on the device" in message and "mask.png" in message


def test_pngs_round_trip(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    save_png(tmp_path / "m.png", array)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), array)


def test_disk_errors_are_found_inside_wrapping_exceptions():
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/ro/x")
        except OSError as err:
            raise RuntimeError("saving failed") from err
    except RuntimeError as wrapped:
        assert is_disk_error(wrapped)
        assert "the file system is read-only" in disk_error_message(wrapped) and "/ro/x" in disk_error_message(wrapped)
    assert not is_disk_error(OSError(errno.ENOENT, "missing"))


def test_an_unwritable_folder_is_reported(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "NamedTemporaryFile", read_only)
    assert writable_folder_problem(tmp_path) == f"cannot write into {tmp_path}: the file system is read-only"


def test_a_writable_folder_is_made_and_passes(tmp_path):
    assert writable_folder_problem(tmp_path / "new" / "out") is None and (tmp_path / "new" / "out").is_dir()

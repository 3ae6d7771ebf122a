"""segattn.checkpoint: reading checkpoints, and refusing files that are not usable checkpoints."""

from __future__ import annotations

import pytest
import torch

from segattn.checkpoint import load_checkpoint
from segattn.errors import CheckpointError
from tests.helpers.checkpoints import tiny_checkpoint as _tiny_checkpoint


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(100)}, "hyper_parameters": {}}, good)
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: not a readable checkpoint"):
        load_checkpoint(bad)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.ckpt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_checkpoint_config_cannot_name_arbitrary_targets(tmp_path):
    path = _tiny_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["config"] = {"data": {"_target_": "os.system", "command": "touch /tmp/x"}}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"data\._target_ names 'os.system'"):
        load_checkpoint(path)


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

"""Loading checkpoints without trusting them.

``torch.load(weights_only=True)`` refuses any pickled object other than tensors and plain
containers, so a checkpoint cannot run code when it is opened. The configuration stored inside
is then only used to instantiate its data settings from an allow-list of module prefixes, so a doctored
``_target_`` cannot call arbitrary functions either. Errors name the file and what is wrong.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from segattn.errors import CheckpointError

#: Module prefixes a checkpoint's stored config may name in ``_target_``.
ALLOWED_TARGET_PREFIXES = ("segattn.", "albumentations.")


#: How every file written by ``torch.save`` starts: a zip archive (PyTorch >= 1.6), or a pickle of
#: protocol 2 or later (the legacy format).
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_KNOWN_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip file",
}


def describe_file(head: bytes) -> str:
    """What a file that is not a checkpoint looks like, from its first bytes, for the message."""
    if not head:
        return "empty"
    for magic, name in _KNOWN_FORMATS.items():
        if head.startswith(magic):
            return name
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a binary file starting with {head[:8]!r}"
    kind = "a JSON file" if text.lstrip().startswith(("{", "[")) else "a text file"
    return f"{kind} starting with {text.strip()[:30]!r}"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with weights-only unpickling and check it is a segattn training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read: {err.strerror}") from None
    if not head.startswith(CHECKPOINT_MAGIC):
        raise CheckpointError(
            f"{path}: not a checkpoint: it is {describe_file(head)}; expected a .ckpt file written by training "
            f"(a torch.save zip archive, e.g. <run dir>/checkpoints/last.ckpt or best.ckpt)"
        )
    verify_archive(path, head)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects other than tensors and plain containers "
            f"(weights-only loading protects against code execution). Detail: {str(err).splitlines()[0]}"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
    ) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {err}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path}: not a segattn training checkpoint: expected keys 'state_dict' and 'hyper_parameters', "
            f"found {keys}"
        )
    hparams = checkpoint["hyper_parameters"]
    if not isinstance(hparams, dict) or not isinstance(hparams.get("net"), dict) or "class_names" not in hparams:
        raise CheckpointError(f"{path}: its hyper_parameters lack the network settings ('net') and 'class_names'")
    # Only the data config is ever instantiated from a checkpoint (the network is built directly).
    check_targets((hparams.get("config") or {}).get("data") or {}, str(path), "data")
    return checkpoint


def verify_archive(path: Path, head: bytes) -> None:
    """Check every member of a zip checkpoint against its CRC-32: ``torch.load`` does not, so a
    flipped bit inside a tensor would load as a silently different weight. Legacy pickle files
    carry no checksum."""
    if not head.startswith(b"PK"):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {err}") from None
    if bad is not None:
        raise CheckpointError(
            f"{path}: the checkpoint is corrupt: its part {bad!r} does not match its checksum (a damaged copy or "
            "disk); use another copy, or an earlier checkpoint of the run"
        )


def check_targets(node: Any, source: str, key: str = "") -> None:
    """Raise unless every ``_target_`` in a nested config starts with an allowed prefix."""
    if isinstance(node, dict):
        for k, v in node.items():
            where = f"{key}.{k}" if key else str(k)
            if k == "_target_" and not (isinstance(v, str) and v.startswith(ALLOWED_TARGET_PREFIXES)):
                raise CheckpointError(
                    f"{source}: config key {where} names {v!r}; only targets under "
                    f"{', '.join(ALLOWED_TARGET_PREFIXES)} are allowed"
                )
            check_targets(v, source, where)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_targets(v, source, f"{key}[{i}]")


def weight_mismatches(own: dict[str, torch.Tensor], stored: dict[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and mis-shaped tensors of ``stored`` against a model's ``own`` state dict,
    summarised (count and first names) for an error message; empty when they fit exactly."""
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(stored[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in stored and stored[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if mismatched:
        problems.append(f"{len(mismatched)} with another shape (e.g. {mismatched[:3]})")
    return problems

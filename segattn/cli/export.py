"""``segattn-export ckpt_path=<file> format=onnx|torchscript``: the trained network as one file
for other runtimes, any input height and width (multiples of 2**depth).

The file carries the training run's data and inference settings, so ``segattn-predict
ckpt_path=<exported file>`` runs it like the checkpoint. The exported model is run at
``check_sizes`` and compared with PyTorch before it takes its name; a difference above
``tolerance`` is an error, and nothing is written.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from segattn.checkpoint import load_checkpoint
from segattn.cli.common import run_or_exit
from segattn.cli.preflight import preflight
from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.errors import ConfigError, ExportMismatchError, OutputExistsError, RunDirectoryError
from segattn.files import writable_folder_problem
from segattn.training.module import module_from_checkpoint
from segattn.values import is_int

log = logging.getLogger(__name__)


def check_sizes(sizes, multiple: int) -> list[tuple[int, int]]:
    """``check_sizes`` as (height, width) pairs that the model takes."""
    pairs = []
    for size in sizes:
        if len(size) != 2 or any(not is_int(s) or s < multiple or s % multiple for s in size):
            raise ConfigError(
                f"check_sizes: got {list(size)}; expected [height, width], positive multiples of 2**depth = {multiple}"
            )
        pairs.append((size[0], size[1]))
    return pairs


def export(cfg: DictConfig) -> Path:
    """Write the exported model and return its path."""
    from segattn.export import FORMATS, ExportedModel, export_metadata, export_model, parity_error
    from segattn.export.exporters import SUFFIXES

    if cfg.format not in FORMATS:
        raise ConfigError(f"format: got {cfg.format!r}; allowed: {', '.join(FORMATS)}")
    output = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).with_suffix(SUFFIXES[cfg.format])
    # segattn-predict (and the check below) tell the formats apart by the suffix: .onnx is ONNX.
    if (output.suffix.lower() == ".onnx") != (cfg.format == "onnx"):
        wanted = "a name ending in .onnx" if cfg.format == "onnx" else "another suffix than .onnx (.pt)"
        raise ConfigError(
            f"output={output}: a {cfg.format} model needs {wanted}, since segattn-predict reads .onnx files as ONNX"
        )
    if output.resolve() == Path(cfg.ckpt_path).resolve():
        raise ConfigError(f"output={output} is the checkpoint itself; choose another output")
    if output.exists() and not cfg.overwrite:
        raise OutputExistsError(
            f"output={output} already exists; nothing was overwritten. Choose another output, or give overwrite=true"
        )
    problem = writable_folder_problem(output.parent)
    if problem:
        raise RunDirectoryError(f"output={output}: {problem}; nothing was written. Choose a writable output")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    net = module_from_checkpoint(checkpoint, cfg.ckpt_path).net
    sizes = check_sizes(cfg.check_sizes, 2**net.depth)
    # Checked under a temporary name: a model that fails the check never takes the name (nor replaces
    # an earlier export there).
    handle, name = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=f".checking{output.suffix}", dir=output.parent)
    os.close(handle)
    checking = Path(name)  # a name of its own: no other file, nor a second export, uses it
    try:
        export_model(net, cfg.format, checking, export_metadata(checkpoint), cfg.opset)
        error = parity_error(net, ExportedModel(checking), sizes)
        if not error <= cfg.tolerance:  # also catches NaN
            raise ExportMismatchError(
                f"{output}: the exported model's logits differ from PyTorch's by up to {error:.3g} at sizes {sizes} "
                f"(tolerance {cfg.tolerance}); nothing was written (please report this)"
            )
        os.replace(checking, output)
    finally:
        checking.unlink(missing_ok=True)
    log.info("Wrote %s (%s); logits match PyTorch within %.2g at sizes %s", output, cfg.format, error, sizes)
    return output


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(export, cfg)


def main() -> None:
    register_resolvers()
    preflight("export", "export")
    _hydra_main()


if __name__ == "__main__":
    main()

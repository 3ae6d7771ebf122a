"""The inference settings of ``evaluate.py`` and ``segattn-predict``, set up one way for both."""

from __future__ import annotations

from dataclasses import asdict, replace

from segattn.data.io import set_max_pixels
from segattn.errors import ConfigError
from segattn.inference import InferenceSettings


def flips_as_trained(tta_vertical: bool | None, datamodule) -> bool:
    """``inference.tta_vertical``, null resolved to the training's own vertical flips
    (``data.vertical_flip``): test-time flips along the axes flipped in training."""
    return bool(getattr(datamodule, "vertical_flip", False)) if tta_vertical is None else tta_vertical


def turns_as_trained(tta_rotate90: bool | None, datamodule) -> bool:
    """``inference.tta_rotate90``, null resolved to the training's own quarter turns (``data.rotate90``)."""
    return bool(getattr(datamodule, "rotate90", False)) if tta_rotate90 is None else tta_rotate90


def prepare_inference(module, datamodule, overrides: dict | None) -> None:
    """The training run's inference settings (saved in the checkpoint) with the non-null keys of
    the command's ``inference`` block applied, checked as training checks them.

    A patch-trained model runs only by sliding window (its data has no training size to resize
    to). A model trained on resized images can slide a window too: its images then stay at native
    scale (the data module stops resizing) and the window defaults to ``data.image_size``. Call
    before the data module is set up.
    """
    saved = asdict(module.inference)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(saved))
    if unknown:
        raise ConfigError(f"inference: unknown keys {unknown}; allowed: {', '.join(saved)}")
    try:
        settings = InferenceSettings(**{**saved, **given})
    except ValueError as err:
        raise ConfigError(str(err)) from None
    settings = replace(
        settings,
        tta_vertical=flips_as_trained(settings.tta_vertical, datamodule),
        tta_rotate90=turns_as_trained(settings.tta_rotate90, datamodule),
    )
    set_max_pixels(settings.max_pixels)
    patch_size = getattr(datamodule, "patch_size", None)
    if patch_size and settings.mode != "sliding_window":
        raise ConfigError(
            f"inference.mode: got {settings.mode!r} for a model trained on {patch_size}² patches at native scale; "
            "it segments whole images by sliding window only: inference.mode=sliding_window"
        )
    if settings.mode == "sliding_window":
        window = settings.window or patch_size or datamodule.image_size
        multiple = 2**module.net.depth
        if window % multiple:
            raise ConfigError(f"inference.window: got {window}; the model needs a multiple of 2**depth = {multiple}")
        settings = replace(settings, window=window)
        if not patch_size:
            datamodule.keep_native_size()
    module.inference = settings

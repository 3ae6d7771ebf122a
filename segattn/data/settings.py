"""The rules of the data settings, in one place.

The data modules raise on a broken setting when built; ``validate_train_config`` reports every
broken ``data.*`` setting at once before anything is read. Both ask ``data_problems``. Problems
read "<setting>: got <value>; <what is allowed>", without the config group's prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segattn.data.transforms import AUGMENTS
from segattn.data.workers import AUTO
from segattn.values import is_int, is_number

OXFORD_TASKS = ("binary", "trimap")
DOWNLOAD_CHOICES = "true, false, auto"


def fraction_problem(name: str, value: Any) -> str | None:
    if is_number(value) and not 0 <= value < 1:
        return f"{name}: got {value}; expected a fraction in [0, 1)"
    return None


def data_problems(settings: Mapping[str, Any]) -> list[str]:
    """Problems of the settings present in ``settings`` (absent keys are not checked)."""
    problems = []

    def check(name: str, ok, expected: str) -> None:
        if name in settings and not ok(settings[name]):
            problems.append(f"{name}: got {settings[name]!r}; expected {expected}")

    check("image_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("num_workers", lambda v: v == AUTO or (is_int(v) and v >= 0), f"an integer >= 0 or {AUTO}")
    check("max_samples", lambda v: v is None or (is_int(v) and v >= 1), "a positive integer or null")
    check(
        "patch_size", lambda v: v is None or (is_int(v) and v >= 1), "a positive integer or null (resize to image_size)"
    )
    check("scale", lambda v: is_number(v) and v > 0, "a resampling factor > 0 (1 = native scale)")
    check("foreground_fraction", lambda v: is_number(v) and 0 <= v <= 1, "a fraction in [0, 1]")
    check("patches_per_image", lambda v: is_int(v) and v >= 1, "an integer >= 1")
    check("augment", lambda v: v in AUGMENTS, f"one of {', '.join(AUGMENTS)}")
    check("download", lambda v: v is True or v is False or v == "auto", DOWNLOAD_CHOICES)
    check("task", lambda v: v in OXFORD_TASKS, f"one of {', '.join(OXFORD_TASKS)}")
    check("in_channels", lambda v: v is None or v in (1, 3), "1 (grey) or 3 (RGB)")
    for name in ("val_fraction", "test_fraction"):
        problem = fraction_problem(name, settings.get(name))
        if problem:
            problems.append(problem)
    val, test = settings.get("val_fraction", 0), settings.get("test_fraction", 0)
    if is_number(val) and is_number(test) and 0 <= val < 1 and 0 <= test < 1 and val + test >= 1:
        problems.append(f"val_fraction + test_fraction: got {val + test}; must leave images to train on")
    return problems


def raise_on_problems(owner: str, settings: Mapping[str, Any]) -> None:
    """For constructors: a ValueError naming every problem of ``settings``."""
    problems = data_problems(settings)
    if problems:
        raise ValueError(f"{owner}: " + "; ".join(f"data.{p}" for p in problems))

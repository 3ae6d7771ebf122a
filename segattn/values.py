"""Type tests of configuration values, shared by every settings check.

YAML and Hydra overrides can give ``true`` where a number is expected, and Python counts a bool as
an int, so each test rules bools out explicitly.
"""

from __future__ import annotations

from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bool_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"{name}: got {value!r}; expected true or false"
    return None

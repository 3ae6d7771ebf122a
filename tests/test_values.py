"""Type tests of config values: bools are not numbers, whatever Python says."""

from __future__ import annotations

import pytest

from segattn.values import bool_problem, is_int, is_number


@pytest.mark.parametrize(
    "value, expected",
    [(3, True), (0, True), (-2, True), (True, False), (False, False), (3.0, False), ("3", False), (None, False)],
)
def test_is_int_excludes_bools_and_floats(value, expected):
    assert is_int(value) is expected


@pytest.mark.parametrize("value, expected", [(3, True), (0.5, True), (True, False), ("0.5", False), (None, False)])
def test_is_number_excludes_bools_and_strings(value, expected):
    assert is_number(value) is expected


def test_bool_problem_names_the_setting_and_value():
    assert bool_problem("qk_norm", True) is None
    assert bool_problem("qk_norm", False) is None
    assert bool_problem("qk_norm", 1) == "qk_norm: got 1; expected true or false"
    assert bool_problem("gate_batchnorm", "yes") == "gate_batchnorm: got 'yes'; expected true or false"

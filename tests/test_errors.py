"""segattn.errors: the error classes are the builtin kinds that callers already catch."""

from __future__ import annotations

from segattn.errors import DatasetContentError, DatasetLayoutError


def test_error_classes_are_the_builtin_kinds():
    # Callers that only know the builtins (FileNotFoundError, ValueError) still catch them.
    assert issubclass(DatasetLayoutError, FileNotFoundError)
    assert issubclass(DatasetContentError, ValueError)

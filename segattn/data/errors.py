"""Errors of the data layer: what is missing from a layout, and what is wrong inside files."""


class DatasetLayoutError(FileNotFoundError):
    """The data root or a part of the expected layout is missing."""


class DatasetContentError(ValueError):
    """Files are listed but missing, unreadable, of mismatched sizes, or hold unexpected values."""

"""The errors a command ends with one message and exit code 2 instead of a traceback.

Each names what the user can change (a setting, a file, a folder). Everything else is a bug and
keeps its traceback. The built-in base classes stay, so ``except ValueError`` still catches them.
"""

from __future__ import annotations


class SegattnError(Exception):
    """Base of the errors that end a command with their message and exit code 2."""


class ConfigError(SegattnError, ValueError):
    """The configuration cannot run; the message lists every problem found."""


class CheckpointError(SegattnError, ValueError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not of the expected model."""


class DatasetLayoutError(SegattnError, FileNotFoundError):
    """The data root or a part of the expected layout is missing."""


class DatasetContentError(SegattnError, ValueError):
    """Files are listed but missing, unreadable, of mismatched sizes, or hold unexpected values."""


class RunDirectoryError(SegattnError, RuntimeError):
    """The run directory holds another run, or cannot be written."""


class NonFiniteLossError(SegattnError, RuntimeError):
    """The training loss became NaN or infinite (the run stops; the last good checkpoint stays)."""


class OutputExistsError(SegattnError, FileExistsError):
    """An output file or folder the command would replace, or one that is no folder for outputs."""


class ExportMismatchError(SegattnError, RuntimeError):
    """The exported model does not reproduce PyTorch's logits."""

"""Checking a composed configuration before any work starts."""

from segattn.config.validation import validate_train_config
from segattn.errors import ConfigError

__all__ = ["ConfigError", "validate_train_config"]

"""Checking a composed configuration before any work starts."""

from segattn.config.validation import ConfigError, validate_train_config

__all__ = ["ConfigError", "validate_train_config"]

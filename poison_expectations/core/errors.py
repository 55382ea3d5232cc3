"""Errors a user can act on. The CLI turns each into one line and an exit code."""


class PoisonCheckError(Exception):
    """Base for errors that mean 'bad usage, input or config' (exit code 2)."""

    exit_code = 2


class InputError(PoisonCheckError):
    """The data file or its columns cannot be used as given."""


class ConfigError(PoisonCheckError):
    """A config file, key or value is invalid."""


class OutputError(PoisonCheckError):
    """An output file could not be written; nothing partial was left behind."""

"""Exceptions that the command line turns into exit codes (the exit codes are listed in the README).

- :class:`BadInput` (exit 2): a config, argument or file is wrong. The message is one
  line that names the offending key, file or value.
- :class:`Diverged` (exit 3): a run's weights became non-finite or left their bound.
- :class:`Interrupted` (exit 130): SIGINT/SIGTERM stopped the run cleanly.
"""


class PlasticityError(Exception):
    """Base class of the package's own errors."""

    exit_code = 1


class BadInput(PlasticityError, ValueError):
    """Bad config, argument or file: exit code 2, nothing written."""

    exit_code = 2


class ConfigError(BadInput):
    """A config value is missing, unknown or out of range."""


class RunStopped(PlasticityError):
    """A run ended early; its file is kept at ``path`` with the status saying why."""

    def __init__(self, message, time=None, path=None):
        super().__init__(message)
        self.time = time
        self.path = path


class Diverged(RunStopped):
    """The weights of a run left their bound or became non-finite: exit code 3."""

    exit_code = 3


class Interrupted(RunStopped):
    """The run was stopped by SIGINT/SIGTERM: exit code 130, status ``interrupted``."""

    exit_code = 130


class WriteFailed(PlasticityError):
    """Writing a run file failed (a full disk, a lost share): exit code 1. The run
    stops at the first failed write; ``path`` is the file kept (status ``failed``,
    every record flushed before the failure readable), or None when none was kept."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def os_error_reason(error):
    """A short reason for an ``OSError`` met reading a file (``symlink loop`` for ELOOP)."""
    return "symlink loop" if error.errno == 40 else (error.strerror or type(error).__name__)

"""One exception type for everything the user can fix.

The CLI catches :class:`AsrtuneError` and prints its message as a single line (exit code 2);
any other exception is a bug in asrtune and keeps its traceback. Messages name the file,
manifest line or option at fault and, where one exists, the fix.
"""

from __future__ import annotations


class AsrtuneError(Exception):
    """A problem with the user's input, config or environment, described in one clear line."""


class ManifestError(AsrtuneError):
    """A manifest line is malformed. Carries the manifest path and 1-based line number."""

    def __init__(self, path: str, line_no: int | None, message: str):
        where = f"{path}:{line_no}" if line_no is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line_no = line_no
        self.reason = message


class AudioError(AsrtuneError):
    """An audio file is missing, unreadable, truncated or empty. Names the file."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class ConfigError(AsrtuneError):
    """An option or config value is impossible. Names the option."""


class MissingExtraError(ConfigError):
    """An optional feature's package is not installed; the message names the pip extra that brings it
    (raised by :func:`asrtune.extras.needs_extra`)."""


class ModelResolutionError(AsrtuneError):
    """A model name resolved to nothing usable; the message lists what was tried."""

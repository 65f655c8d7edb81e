"""User-facing errors.

Every problem a user can fix (a bad file, a missing weight, a wrong option) is raised as a
:class:`GenkitError`. The CLI prints its message and exits non-zero without a traceback
(unless ``--debug``); library users can catch the subclasses.
"""

from __future__ import annotations

from pathlib import Path


class GenkitError(Exception):
    """Base class for errors whose message is meant for the user."""

    exit_code = 2


class DataError(GenkitError):
    """A dataset file or folder is unusable. The message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str | None = None):
        if problem is None:
            # Rebuilt from a message alone, as torch's DataLoader does for an error raised in a worker process:
            # keep the original one-line message rather than the worker's traceback.
            message = str(path)
            marker = f"{type(self).__module__}.{type(self).__qualname__}: "
            lines = [ln[len(marker):] for ln in message.splitlines() if ln.startswith(marker)]
            self.path, self.problem = None, lines[-1] if lines else message
            super().__init__(self.problem)
            return
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class WeightsUnavailableError(GenkitError):
    """Pretrained weights are missing and cannot be downloaded."""


class WeightsFileError(GenkitError):
    """A weights file is present but unusable (wrong hash, not a state dict, NaN values, wrong keys or shapes).

    Deliberately not a :class:`WeightsUnavailableError`: ``allow_random`` never hides a damaged or wrong file.
    """


class ConfigError(GenkitError):
    """An option or configuration value is invalid."""


class CheckpointError(GenkitError):
    """A checkpoint does not fit what it is loaded into (schema, resolution, levels...)."""


class FileSystemError(GenkitError):
    """A file could not be read or written (disk full, permission denied, I/O error): one line naming the path."""

    exit_code = 1

    @classmethod
    def from_os_error(cls, exc: OSError) -> "FileSystemError":
        """``path: reason`` of an ``OSError`` (``[Errno 28] No space left on device: 'x'`` -> ``x: No space left on
        device``)."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return cls(f"{' -> '.join(names)}: {reason}" if names else reason)

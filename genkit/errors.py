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

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class WeightsUnavailableError(GenkitError):
    """Pretrained weights are missing and cannot be downloaded."""


class ConfigError(GenkitError):
    """An option or configuration value is invalid."""


class CheckpointError(GenkitError):
    """A checkpoint does not fit what it is loaded into (schema, resolution, levels...)."""

"""Checks on output paths made before any work starts, so a run never fails at its last step."""

from __future__ import annotations

import os
from pathlib import Path

from genkit.core.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, what: str) -> None:
    """``path`` (not yet existing, or an existing folder) can be created/written by this user."""
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise ConfigError(f"{path}: cannot write {what} there: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write {what} there: {base} is not writable")


def check_output_file(path: str | Path, what: str = "output", suffixes=None, hint: str | None = None) -> Path:
    """Check an output file path before any work starts: not an existing folder, an allowed extension (when
    ``suffixes`` is given, e.g. :data:`IMAGE_FORMATS`), and a folder it can be written into. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: {what} is an existing folder; give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        got = f"'{path.suffix}'" if path.suffix else "none"
        raise ConfigError(f"{path}: {what} has an unknown extension ({got}); "
                          + (hint or f"use one of {', '.join(suffixes)}"))
    _check_creatable(path.parent if str(path.parent) else Path("."), what)
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise ConfigError(f"{path}: {what} exists and cannot be replaced (not writable)")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check an output folder before any work starts: not an existing file, and creatable/writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: {what} is a file, not a folder")
    _check_creatable(path, what)
    return path

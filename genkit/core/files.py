"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``, so an interrupted run never
leaves a half-written output or checkpoint in place of a good one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Iterator


def _temp_beside(path: Path) -> Path:
    """Create an empty, unique temporary file next to ``path`` with the permissions a plain ``open(path, "w")``
    would give: the umask's (``os.open`` mode 0o666), or the existing file's when ``path`` is replaced.
    (``tempfile.mkstemp`` would make every output 0600, unreadable to colleagues on a shared machine.)"""
    try:
        keep = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    except OSError:
        keep = None
    for _ in range(100):
        tmp = path.parent / f".{path.name[:120]}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        if keep is not None:
            os.chmod(tmp, keep)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The file gets the permissions the umask allows (or those of the file it replaces).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

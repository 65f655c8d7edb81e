"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``, so an interrupted run never
leaves a half-written output or checkpoint in place of a good one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Iterable, Iterator


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
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        if exc.filename is None or str(exc.filename).endswith(".tmp"):  # name the output, not the temporary file
            exc.filename, exc.filename2 = str(path), None
        raise
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def replaced_entries(folder: str | Path, replace: Iterable[str] = ()) -> Iterator[Path]:
    """Write a set of entries (a dataset's ``images/``, ``masks/``, ``schema.json``...) into ``folder`` as a whole.

    Yields an empty staging folder inside ``folder``. When the block succeeds, the entries named in ``replace``
    are moved aside, everything written to the staging folder is moved into ``folder`` and the old entries are
    deleted; when it fails, the staging folder is deleted and ``folder`` is as it was. So ``folder`` never holds a
    mixture of an old and a new dataset, or half of one.
    """
    import shutil

    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging, old = folder / f".genkit-new-{token}", folder / f".genkit-old-{token}"
    staging.mkdir()
    done = False
    try:
        yield staging
        old.mkdir()
        for name in replace:
            if (folder / name).exists() or (folder / name).is_symlink():
                os.replace(folder / name, old / name)
        for entry in sorted(staging.iterdir()):
            os.replace(entry, folder / entry.name)
        done = True
    except OSError as exc:  # name the file the user asked for, not its staging copy
        if exc.filename is not None and str(exc.filename).startswith(str(staging)):
            exc.filename = str(folder) + str(exc.filename)[len(str(staging)):]
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        for p in created if not done else ():  # a failed run leaves no empty output folder behind
            try:
                p.rmdir()
            except OSError:
                break

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


def check_output_file(path: str | Path, what: str = "output", suffixes=None, hint: str | None = None,
                      overwrite: bool | None = None) -> Path:
    """Check an output file path before any work starts: not an existing folder, an allowed extension (when
    ``suffixes`` is given, e.g. :data:`IMAGE_FORMATS`), and a folder it can be written into. Creates nothing.
    ``overwrite=False``: an existing file is refused (the command has an ``--overwrite`` option)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: {what} is an existing folder; give a file name")
    if overwrite is False and (path.exists() or path.is_symlink()):
        raise ConfigError(f"{path}: {what} already exists; add --overwrite to replace it, or choose another file")
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


def _identity(path: Path) -> tuple:
    """What makes a path the file it is: its inode when it exists (hard links, symlinks), else its resolved path.
    The resolved path is tried too: ``sub/../a.png`` names ``a.png`` even where ``sub`` does not exist."""
    resolved = path.resolve()
    for candidate in (path, resolved):
        try:
            st = candidate.stat()
            return ("file", st.st_dev, st.st_ino)
        except OSError:
            continue
    return ("path", str(resolved))


def _same(a: Path, b: Path) -> bool:
    """The same file or folder: one inode (hard links, symlinks) or, for paths not there yet, one resolved path."""
    return _identity(a) == _identity(b)


def _pairs(items) -> list[tuple[str, Path]]:
    """``(label, path)`` pairs from a mapping or a sequence of pairs; ``None`` paths are left out."""
    items = items.items() if hasattr(items, "items") else items
    return [(label, Path(p)) for label, p in items if p not in (None, "")]


def check_not_inputs(inputs, files=(), folders=()) -> None:
    """Refuse, before any work, outputs that would replace or join the inputs (:class:`ConfigError`, one line naming
    both paths).

    ``inputs``, ``files`` and ``folders`` are ``(label, path)`` pairs (or ``{label: path}``); an input that is a
    folder counts as the folder the command reads images from. An output file may not be an input file nor land in
    an input folder as an image (a later run over the folder would read it as an input); an output folder may not be
    an input folder.
    """
    from genkit.core.reading import IMAGE_EXTENSIONS

    inputs = _pairs(inputs)
    for out_label, out in _pairs(files):
        for in_label, src in inputs:
            if src.is_dir() and out.suffix.lower() in IMAGE_EXTENSIONS and _same(out.parent, src):
                raise ConfigError(f"{out}: {out_label} would be written into the input folder {src} ({in_label}), "
                                  "where a later run would read it as an input; choose another output")
            if not src.is_dir() and _same(out, src):
                raise ConfigError(f"{out}: {out_label} would overwrite the input {src} ({in_label}); "
                                  "choose another output")
    for out_label, out in _pairs(folders):
        for in_label, src in inputs:
            if src.is_dir() and _same(out, src):
                raise ConfigError(f"{out}: {out_label} is the input folder {src} ({in_label}): the outputs would "
                                  "replace or join the inputs, and a later run would read them; choose another folder")


def check_distinct_outputs(files) -> None:
    """Refuse, before any work, two outputs of one command that are the same file (the later write would replace the
    earlier): :class:`ConfigError`, one line naming both. ``files``: ``(label, path)`` pairs or ``{label: path}``."""
    seen: dict[tuple, str] = {}
    for label, path in _pairs(files):
        key = _identity(path)
        if key in seen:
            other = seen[key]
            raise ConfigError(f"{path}: {other} and {label} would write the same file (one would replace the "
                              "other); give them different paths")
        seen[key] = label


def check_replaceable(out: str | Path, present, genkit_wrote, overwrite: bool, what: str = "genkit") -> None:
    """Before any work: the files ``present`` in ``out`` that a command would replace. Refused, naming them, when one
    is not a file ``genkit_wrote(path)`` recognises (never replaced, even with ``--overwrite``), or without
    ``overwrite``."""
    out = Path(out)
    present = sorted(present)
    foreign = [n for n in present if (out / n).is_symlink() or not (out / n).is_file() or not genkit_wrote(out / n)]
    if foreign:
        raise ConfigError(f"{out}: {', '.join(foreign)} {'was' if len(foreign) == 1 else 'were'} not written by "
                          f"{what}; --overwrite replaces only what genkit wrote, so choose another folder")
    if present and not overwrite:
        raise ConfigError(f"{out}: already holds {', '.join(present)}; add --overwrite to replace "
                          f"{'it' if len(present) == 1 else 'them'}, or choose a new folder")


DATASET_ENTRIES = ("images", "masks", "previews", "splits", "schema.json", "SYNTHETIC.json", "prepare.json")


def dataset_entries(folder: str | Path) -> list[str]:
    """The dataset entries (``images/``, ``masks/``, ``schema.json``, ...) ``folder`` already holds."""
    folder = Path(folder)
    return [name for name in DATASET_ENTRIES if (folder / name).exists() or (folder / name).is_symlink()]


def _shown(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_dataset_output(out: str | Path, overwrite: bool, inputs=(), what: str = "--out") -> list[str]:
    """Before any work: dataset entries (``images/``, ``schema.json``...) already in ``out`` are refused unless they
    are a dataset genkit wrote and hold nothing else (:func:`genkit.core.written.foreign_files`) and ``overwrite``
    is given; then the dataset it replaces as a whole (see :func:`genkit.core.files.replaced_entries`) may not hold
    one of the ``inputs``. Returns the entries that will be replaced."""
    from genkit.core.written import foreign_files

    out = Path(out)
    present = dataset_entries(out)
    foreign = foreign_files(out, present)
    if foreign:
        raise ConfigError(f"{out}: {what} holds files genkit did not write ({_shown(foreign)}); --overwrite "
                          f"replaces only what genkit wrote, so choose another {what}")
    if present and not overwrite:
        shown = ", ".join(f"{n}/" if (out / n).is_dir() else n for n in present)
        held = ("a dataset genkit wrote" if any((out / n).is_file() for n in present)
                else "empty dataset folders")
        raise ConfigError(f"{out}: {what} already holds {held} ({shown}); add --overwrite to replace it as a "
                          "whole, or choose another folder")
    for name in present:
        for in_label, src in _pairs(inputs):
            entry = (out / name).resolve()
            if src.resolve() == entry or entry in src.resolve().parents:
                raise ConfigError(f"{out}: --overwrite would replace the dataset that holds the input {src} "
                                  f"({in_label}); choose another output folder")
    return present

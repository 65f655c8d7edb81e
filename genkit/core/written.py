"""Which files of a dataset folder genkit wrote, so that ``--overwrite`` replaces those and nothing a user made.

A dataset is genkit's by what its writers leave behind: ``data synth`` writes ``SYNTHETIC.json`` (with ``n``) and
the faces ``synth_00000`` ... ; ``data prepare`` writes ``prepare.json`` last and lists every image id in
``splits/*.txt``; ``parse`` writes each image as a PNG whose genkit metadata names the parser. Only the samples
(``images/NAME.*``, ``masks/NAME.png``, ``previews/NAME.png``) those markers account for, the split files, the marker
files and ``schema.json`` of such a folder count as genkit's; everything else in the dataset's entries is foreign.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SAMPLE_FOLDERS = ("images", "masks", "previews")
SPLIT_FILES = ("train.txt", "val.txt", "test.txt")
MARKERS = ("SYNTHETIC.json", "prepare.json")


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError):
        return None


def _marked_stems(folder: Path) -> tuple[set[str], list[str]]:
    """The sample names the writers' markers account for, and the marker files that are genuine."""
    stems, markers = set(), []
    synth = _json(folder / "SYNTHETIC.json")
    if isinstance(synth, dict) and synth.get("synthetic") is True and isinstance(synth.get("n"), int):
        stems.update(f"synth_{i:05d}" for i in range(synth["n"]))
        markers.append("SYNTHETIC.json")
    if isinstance(_json(folder / "prepare.json"), dict):
        markers.append("prepare.json")
        for name in SPLIT_FILES:
            try:
                stems.update(line.strip() for line in (folder / "splits" / name).read_text().splitlines()
                             if line.strip())
            except (OSError, UnicodeDecodeError):
                pass
    return stems, markers


def _parsed(image: Path) -> bool:
    """An image ``genkit parse`` wrote: a PNG whose genkit metadata names the parser."""
    from genkit.core.metadata import METADATA_KEY

    if image.suffix != ".png" or image.is_symlink():
        return False
    try:
        from PIL import Image

        with Image.open(image) as img:
            meta = json.loads(getattr(img, "text", {}).get(METADATA_KEY) or "null")
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "parser" in meta


def _files_under(folder: Path, entries) -> list[str]:
    """Every file (and empty sub-folder, link or other non-folder) under ``entries``, relative, ``/``-separated."""
    found = []
    for name in entries:
        top = folder / name
        if top.is_symlink() or not top.is_dir():
            found.append(name + ("/" if top.is_dir() else ""))
            continue
        for root, dirs, files in os.walk(top):
            rel = Path(root).relative_to(folder).as_posix()
            found.extend(f"{rel}/{f}" for f in files)
            found.extend(f"{rel}/{d}/" for d in dirs if (Path(root) / d).is_symlink())
            if not dirs and not files and root != str(top):
                found.append(f"{rel}/")
    return sorted(found)


def _genkit_images(folder: Path, marked: set[str]) -> set[str]:
    """The files of ``images/`` genkit wrote: named by SYNTHETIC.json / the splits, or parsed PNGs."""
    from genkit.core.reading import IMAGE_EXTENSIONS

    images = folder / "images"
    if not images.is_dir() or images.is_symlink():
        return set()
    return {p.name for p in images.iterdir() if p.is_file() and not p.is_symlink()
            and p.suffix.lower() in IMAGE_EXTENSIONS and (p.stem in marked or _parsed(p))}


def _is_genkits(rel: str, images: set[str], stems: set[str]) -> bool:
    """``images/NAME.EXT`` genkit wrote, or the ``masks/`` / ``previews/`` PNG of such an image."""
    parts = rel.split("/")
    if len(parts) != 2:
        return False
    if parts[0] == "images":
        return parts[1] in images
    return parts[0] in SAMPLE_FOLDERS and parts[1].endswith(".png") and parts[1][:-4] in stems


def foreign_files(folder: str | Path, entries) -> list[str]:
    """The files under the dataset ``entries`` of ``folder`` (``images``, ``schema.json``...) that genkit did not
    write (relative paths, sorted; a folder ends in ``/``). Empty: replacing the entries loses nothing of the user's."""
    folder = Path(folder)
    marked, markers = _marked_stems(folder)
    images = _genkit_images(folder, marked)
    stems = {Path(name).stem for name in images}
    mine = set(markers) | ({"schema.json"} if markers or images else set())
    if "prepare.json" in markers:
        mine.update(f"splits/{name}" for name in SPLIT_FILES)
    return [rel for rel in _files_under(folder, entries)
            if not (rel in mine or _is_genkits(rel, images, stems)) or (folder / rel).is_symlink()]

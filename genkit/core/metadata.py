"""Where an output image's genkit metadata lives: a PNG text chunk, or a JSON sidecar ``NAME.EXT.json``."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


METADATA_KEY = "genkit"


def sidecar_path(path: str | Path) -> Path:
    """Where the metadata of a non-PNG image lives: ``NAME.EXT.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_metadata(path: str | Path) -> dict | None:
    """The genkit metadata of an image written by :func:`save_image` (PNG chunk or JSON sidecar)."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    with Image.open(path) as img:
        text = getattr(img, "text", {}).get(METADATA_KEY)
    return None if text is None else json.loads(text)

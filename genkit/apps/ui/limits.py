"""What the browser app accepts: upload size, image sides, and reading uploads with genkit's one-line errors.

The pixel ceiling is the CLI's (:func:`genkit.core.reading.read_image`: Pillow's decompression-bomb limit, at least
``MIN_IMAGE_SIDE`` px a side); the app adds a file-size cap (Gradio refuses larger uploads before they reach
genkit) and a longest-side cap, so that one upload cannot hold the server's memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genkit.core.errors import DataError
from genkit.core.reading import PHOTOS, read_image, read_label_map

MAX_UPLOAD_MB = 25
MAX_SIDE = 4096


def upload_name(path: str | Path) -> str:
    """The name a user gave the file (Gradio keeps it as the cached file's base name)."""
    return Path(path).name


def _check_side(size: tuple[int, int], what: str, name: str, max_side: int) -> None:
    w, h = size
    if max(w, h) > max_side:
        raise DataError(None, f"{what} {name} is {w}x{h} px; this app takes images up to {max_side} px on a side "
                              "(resize it first)")


def read_upload(path: str | Path | None, what: str = "photo", max_side: int = MAX_SIDE) -> Image.Image:
    """An uploaded image as 8-bit RGB, or a :class:`DataError` naming ``what``, the file and the problem."""
    if path is None:
        raise DataError(None, f"no {what} was given: upload an image first")
    name = upload_name(path)
    try:
        img = read_image(path, PHOTOS)
    except DataError as exc:
        raise DataError(None, f"{what} {name}: {exc.problem}") from None
    _check_side(img.size, what, name, max_side)
    return img


def read_label_upload(path: str | Path, num_classes: int, size: tuple[int, int], what: str = "label map"
                      ) -> np.ndarray:
    """An uploaded label map (8-bit PNG of label values) that must be ``size`` (w, h) and hold only the schema's
    labels."""
    name = upload_name(path)
    try:
        labels = read_label_map(path, num_classes)
    except DataError as exc:
        raise DataError(None, f"{what} {name}: {exc.problem}") from None
    if (labels.shape[1], labels.shape[0]) != tuple(size):
        raise DataError(None, f"{what} {name} is {labels.shape[1]}x{labels.shape[0]} px but the photo is "
                              f"{size[0]}x{size[1]} px; a label map must have its photo's size")
    return labels

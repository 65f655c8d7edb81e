"""Reading a label map a person made: 8-bit label PNGs, and colour-coded masks in a schema's palette.

A mask painted in an image editor, or the colour preview that ``genkit parse`` writes (``previews/NAME.png``), is an
RGB image whose colours are the schema's palette (:attr:`LabelSchema.colors`). Brushes and resizing anti-alias the
edges between regions, so each colour is snapped to the nearest palette colour; an image whose colours are mostly
far from every palette colour (a photo given as a mask) is refused.

:func:`read_mask` reads any of these; :func:`labels_from_colors` is the snapping itself (arrays, for apps that get
pixels from a browser canvas).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genkit.core.errors import DataError
from genkit.core.reading import mode_name, open_image
from genkit.data.schemas import LabelSchema, get_schema

# a pixel farther than this (RGB Euclidean distance) from every palette colour is "off-palette"
OFF_PALETTE_DISTANCE = 60.0
# a colour mask may have this fraction of off-palette pixels (anti-aliased edges); more is not a colour mask
MAX_OFF_PALETTE = 0.05


def nearest_labels(rgb: np.ndarray, schema: LabelSchema | str) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) colours -> ((...) the label of the nearest palette colour, (...) the RGB distance to it)."""
    schema = get_schema(schema)
    rgb = np.asarray(rgb)
    palette = np.asarray(schema.colors, dtype=np.float64)
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)  # few distinct colours
    dist = np.linalg.norm(colours[:, None, :].astype(np.float64) - palette[None], axis=2)
    inverse = inverse.reshape(-1)
    shape = rgb.shape[:-1]
    return dist.argmin(1)[inverse].reshape(shape).astype(np.int64), dist.min(1)[inverse].reshape(shape)


def labels_from_colors(rgb: np.ndarray, schema: LabelSchema | str, name: str | Path | None = None) -> np.ndarray:
    """(H, W, 3) uint8 colours -> (H, W) int64 labels: each pixel takes the class of the nearest palette colour.

    Raises :class:`DataError` (naming ``name``) when more than 5 % of the pixels are far from every palette colour:
    the image is then not a colour mask of this schema."""
    schema = get_schema(schema)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(name, f"a colour mask must be (H, W, 3), got shape {rgb.shape}")
    labels, gap = nearest_labels(rgb, schema)
    off = float((gap > OFF_PALETTE_DISTANCE).mean())
    if off > MAX_OFF_PALETTE:
        raise DataError(name, f"{off:.0%} of its pixels are far from every colour of schema {schema.name!r}: not a "
                              "colour-coded mask of this schema (give an 8-bit label map, or paint with the colours "
                              "of the previews that `genkit parse` writes)")
    return labels


def read_mask(path: str | Path, schema: LabelSchema | str) -> np.ndarray:
    """A label map from a file: an 8-bit label PNG (mode L or P: the values are the labels) or a colour-coded mask
    (RGB/RGBA in the schema's palette, snapped to it). Grey RGB images whose values are labels count as labels."""
    schema = get_schema(schema)
    path = Path(path)
    img = open_image(path)
    n = schema.num_classes
    if img.mode in ("L", "P"):
        labels = np.asarray(img, dtype=np.int64)
    elif img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"))
        grey = rgb[..., 0]
        if (rgb == grey[..., None]).all() and int(grey.max()) < n:
            labels = grey.astype(np.int64)
        else:
            return labels_from_colors(rgb, schema, path)
    else:
        raise DataError(path, f"a mask must be an 8-bit label map (mode L or P) or a colour-coded RGB image in the "
                              f"schema's palette, got {mode_name(img.mode)}")
    bad = np.unique(labels[labels >= n])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8]) + (" ..." if bad.size > 8 else "")
        raise DataError(path, f"label values {shown} are outside the schema (0..{n - 1})")
    return labels

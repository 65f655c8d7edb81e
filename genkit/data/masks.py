"""Reading a label map a person made: 8-bit label PNGs, and colour-coded masks in a schema's palette.

A mask painted in an image editor, or the colour preview that ``genkit parse`` writes (``previews/NAME.png``), is an
RGB image whose colours are the schema's palette (:attr:`LabelSchema.colors`). Brushes, blurring, resizing and JPEG
soften the edges between regions, and a blend of two colours may lie nearest a third palette colour (half hair, half
background is nearest inner mouth). So a pixel near a palette colour takes its class, and a pixel far from every
palette colour (an edge blend) takes the class, among those of the clearly coloured pixels around it, whose colour is
nearest: edges snap to the labels on either side, never to a class that is nowhere near. An image whose colours are
mostly far from every palette colour (a photo given as a mask) is refused.

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
# a pixel nearer than this to a palette colour (and than a quarter of the gap between the two closest palette colours)
# is clearly that colour (JPEG noise stays within it); farther, it is an edge blend, snapped among its neighbours'
CLEAR_DISTANCE = 20.0
# how far (px) a blended pixel looks for clearly coloured neighbours: the half-width of the widest soft edge read
NEIGHBOURHOOD = (2, 4, 8)
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
    return _snap_blends(rgb, labels, gap, np.asarray(schema.colors, dtype=np.float64))


def _snap_blends(rgb: np.ndarray, labels: np.ndarray, gap: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``labels`` with each blended pixel (farther than the clear distance from every palette colour) given the
    nearest-coloured class among the clear pixels within ``NEIGHBOURHOOD`` px (the smallest radius that has any);
    a blend with no clear pixel near keeps its nearest palette colour."""
    from scipy.ndimage import maximum_filter

    pair = np.linalg.norm(palette[:, None] - palette[None], axis=2)
    clear = gap <= min(CLEAR_DISTANCE, pair[~np.eye(len(palette), dtype=bool)].min() / 4)
    blend = ~clear
    if not blend.any():
        return labels
    out = labels.copy()
    dist = np.linalg.norm(rgb[blend].astype(np.float64)[:, None] - palette[None], axis=2)  # (N, K)
    todo = np.ones(len(dist), dtype=bool)
    present = [k for k in range(len(palette)) if (clear & (labels == k)).any()]
    for radius in NEIGHBOURHOOD:
        near = np.full(dist.shape, np.inf)
        for k in present:
            around = maximum_filter(clear & (labels == k), size=2 * radius + 1)[blend]
            near[around, k] = dist[around, k]
        found = todo & np.isfinite(near).any(1)
        ys, xs = np.nonzero(blend)
        out[ys[found], xs[found]] = near[found].argmin(1)
        todo &= ~found
        if not todo.any():
            break
    return out


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

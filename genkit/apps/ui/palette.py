"""The label map as the truth behind a painted colour mask: colouring, snapping painted strokes back to labels,
flood fill, and the legend.

Canvas strokes are anti-aliased (Gradio cannot switch it off), so a painted pixel's colour is a blend of the
brush colour and what was under it. :func:`snap_strokes` takes every pixel a stroke covers at more than half
opacity and gives it the label of the nearest palette colour; every other pixel keeps its label.
The snapping is :func:`genkit.data.masks.nearest_labels`, the same that reads colour-mask files.
"""

from __future__ import annotations

import numpy as np

from genkit.data import masks
from genkit.data.schemas import LabelSchema

STROKE_ALPHA = 0.5


def hex_colour(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def nearest_labels(rgb: np.ndarray, schema: LabelSchema) -> np.ndarray:
    """(..., 3) colours -> (...) the label whose palette colour is nearest (Euclidean in RGB)."""
    return masks.nearest_labels(rgb, schema)[0]


def _fit(layer: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A stroke layer resized (nearest) to the label map's (h, w) when the canvas had another size."""
    if layer.shape[:2] == shape:
        return layer
    from PIL import Image

    return np.asarray(Image.fromarray(layer).resize((shape[1], shape[0]), Image.NEAREST))


def snap_strokes(labels: np.ndarray, layers: list[np.ndarray], schema: LabelSchema) -> np.ndarray:
    """``labels`` (H, W) with every RGBA stroke layer (painted over it, in order) snapped onto it."""
    out = labels.copy()
    for layer in layers:
        if layer is None or layer.ndim != 3 or layer.shape[2] != 4:
            continue
        layer = _fit(np.asarray(layer, dtype=np.uint8), out.shape)
        painted = layer[..., 3] > STROKE_ALPHA * 255
        if painted.any():
            out[painted] = nearest_labels(layer[..., :3][painted], schema)
    return out


def flood_fill(labels: np.ndarray, x: int, y: int, label: int) -> np.ndarray:
    """The 4-connected region of the clicked pixel's label, relabelled ``label``."""
    from skimage.segmentation import flood

    h, w = labels.shape
    if not (0 <= x < w and 0 <= y < h):
        return labels
    out = labels.copy()
    out[flood(labels, (int(y), int(x)), connectivity=1)] = label
    return out


def legend_markdown(schema: LabelSchema) -> str:
    """The schema's classes with their colours, as HTML swatches the page shows beside the mask."""
    items = [f'<span style="display:inline-block;margin:2px 8px 2px 0"><span style="display:inline-block;'
             f'width:12px;height:12px;background:{hex_colour(c)};border:1px solid #888;vertical-align:middle">'
             f'</span> {name}</span>' for name, c in zip(schema.classes, schema.colors)]
    return " ".join(items)

"""Semantic masks for the transfer: content regions take their style from the style regions with the same label.

Masks are integer label maps at image resolution; each level uses them at its feature resolution
(:func:`level_labels`): every feature cell takes the label covering most of it, and a label that would vanish that
way (a thin or small region) is pooled by presence: it takes the cells it touches most. A content label that still
has no style cell at a level (two small labels inside one cell) is matched without the mask restriction there,
with a warning that names the level and the smallest region size that always survives it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from genkit.core.errors import ConfigError, DataError

def load_mask(mask, name: str = "mask") -> torch.Tensor:
    """A label map as a (H, W) long tensor from a path (single-channel PNG), PIL image, array or tensor."""
    if isinstance(mask, (str, Path)):
        from genkit.core.reading import read_label_map

        return torch.from_numpy(read_label_map(mask))
    if isinstance(mask, Image.Image):
        if mask.mode not in ("L", "P", "I"):
            raise DataError(name, f"mask must be a single-channel label image (mode L or P), got mode {mask.mode}")
        mask = np.asarray(mask)
    t = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise DataError(name, f"mask must be a 2-D label map, got shape {tuple(t.shape)}")
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise DataError(name, "mask holds non-integer values; expected integer labels")
    t = t.long()
    if int(t.min()) < 0:
        raise DataError(name, "mask holds negative labels")
    return t


def resize_mask(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a (H, W) label map (used with the image resize)."""
    if tuple(mask.shape) == tuple(hw):
        return mask
    return F.interpolate(mask[None, None].float(), size=hw, mode="nearest")[0, 0].long()


def _pooled_fractions(mask: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The labels of ``mask`` and the fraction of each feature cell they cover: (L,), (L, h, w)."""
    labels, inverse = mask.unique(return_inverse=True)
    onehot = F.one_hot(inverse, labels.numel()).permute(2, 0, 1).float()[None]
    return labels, F.adaptive_avg_pool2d(onehot, hw)[0]


def presence_labels(mask: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, list[int]]:
    """Flat (h*w,) cell labels: the majority label of each cell, then every label the majority vote lost gets the
    cells it covers most (presence pooling), never the last cell of another label. Returns the labels and the
    pooled labels."""
    labels, frac = _pooled_fractions(mask, hw)
    grid = frac.argmax(0).reshape(-1)  # indices into labels
    frac = frac.reshape(labels.numel(), -1)
    counts = torch.bincount(grid, minlength=labels.numel())
    pooled = []
    lost = [int(i) for i in torch.nonzero(counts == 0).squeeze(1)]
    for i in sorted(lost, key=lambda j: float(frac[j].sum())):  # smallest region first
        cells = torch.nonzero(frac[i] > 0).squeeze(1)
        cells = cells[frac[i, cells].argsort(descending=True, stable=True)]
        for cell in cells.tolist():
            owner = int(grid[cell])
            if counts[owner] > 1:
                counts[owner] -= 1
                grid[cell] = i
                counts[i] += 1
        if counts[i] > 0:
            pooled.append(int(labels[i]))
    return labels[grid], pooled


def grid_labels(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Flat (h*w,) labels of a feature grid (see :func:`presence_labels`)."""
    return presence_labels(mask, hw)[0]


def level_labels(content_mask: torch.Tensor, style_mask: torch.Tensor, content_hw: tuple[int, int],
                 style_hw: tuple[int, int], tap: str, stride: int) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
    """Per-position labels of one level: ``(labels_c, labels_s, pooled, unrestricted)``.

    ``labels_c`` is -1 where a content label has no style cell at this level (matched without restriction, with a
    warning); ``pooled`` lists the labels kept by presence pooling on either side.
    """
    labels_c, pooled_c = presence_labels(content_mask, content_hw)
    labels_s, pooled_s = presence_labels(style_mask, style_hw)
    have = set(labels_s.unique().tolist())
    unrestricted = sorted(set(labels_c.unique().tolist()) - have)
    if unrestricted:
        side = 2 * stride - 1
        warnings.warn(f"semantic masks at {tap}: content label(s) {unrestricted} have no style region left at this "
                      f"level (its feature cells are {stride}x{stride} px and other small labels took them); those "
                      f"content positions are matched without the mask restriction at {tap}. Regions of at least "
                      f"{side}x{side} px always keep a cell at {tap}.", UserWarning, stacklevel=2)
        labels_c = torch.where(torch.isin(labels_c, torch.tensor(unrestricted)), -1, labels_c)
    return labels_c, labels_s, sorted(set(pooled_c) | set(pooled_s)), unrestricted


def check_masks(content_mask: torch.Tensor | None, style_mask: torch.Tensor | None,
                content_hw: tuple[int, int], style_hw: tuple[int, int]) -> None:
    if (content_mask is None) != (style_mask is None):
        raise ConfigError("semantic masks need both a content mask and a style mask")
    if content_mask is None:
        return
    for m, hw, which in ((content_mask, content_hw, "content"), (style_mask, style_hw, "style")):
        if tuple(m.shape) != tuple(hw):
            raise DataError(f"{which} mask", f"is {m.shape[1]}x{m.shape[0]} but the {which} image is {hw[1]}x{hw[0]}")
    missing = sorted(set(content_mask.unique().tolist()) - set(style_mask.unique().tolist()))
    if missing:
        raise ConfigError(f"content mask labels {missing} do not occur in the style mask; every content region "
                          "needs a style region with the same label")

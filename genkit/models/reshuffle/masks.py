"""Semantic masks for the transfer: content regions take their style from the style regions with the same label.

Masks are integer label maps at image resolution; each level uses them at its feature resolution
(:func:`level_labels`): every feature cell takes the label covering most of it. A label that vanishes that way (a
thin or small region) is a warning naming the label, the level and its size, and a metadata entry (``mask_lost``).
A content label with no style cell at a level is matched without the mask restriction there (``mask_unrestricted``).
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
    """A label map as a (H, W) long tensor from a path (single-channel PNG), PIL image, array or tensor.

    A JPEG file is read, with a warning naming it: lossy compression adds stray labels along the region edges.
    """
    if isinstance(mask, (str, Path)):
        from genkit.core.reading import read_label_map

        labels = torch.from_numpy(read_label_map(mask))
        with Image.open(mask) as img:  # the header only: read_label_map has checked the file
            lossy = img.format in ("JPEG", "MPO")
        if lossy:
            warnings.warn(f"{mask}: {name} is a JPEG: its lossy compression adds stray labels along the region edges "
                          f"({labels.unique().numel()} distinct values here); save label maps as PNG (lossless)",
                          UserWarning, stacklevel=2)
        return labels
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


def majority_labels(mask: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, list[dict]]:
    """Flat (h*w,) cell labels: each cell takes the label that covers most of it. Returns the labels and the labels
    of ``mask`` that no cell took, each as ``{"label", "pixels"}`` (its size in the mask)."""
    labels, frac = _pooled_fractions(mask, hw)
    grid = frac.argmax(0).reshape(-1)  # indices into labels
    counts = torch.bincount(grid, minlength=labels.numel())
    pixels = torch.bincount(torch.unique(mask, return_inverse=True)[1].reshape(-1), minlength=labels.numel())
    lost = [{"label": int(labels[i]), "pixels": int(pixels[i])} for i in torch.nonzero(counts == 0).squeeze(1).tolist()]
    return labels[grid], lost


def grid_labels(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Flat (h*w,) labels of a feature grid (see :func:`majority_labels`)."""
    return majority_labels(mask, hw)[0]


def level_labels(content_mask: torch.Tensor, style_mask: torch.Tensor, content_hw: tuple[int, int],
                 style_hw: tuple[int, int], tap: str, stride: int) -> tuple[torch.Tensor, torch.Tensor, list[dict], list[int]]:
    """Per-position labels of one level: ``(labels_c, labels_s, lost, unrestricted)``.

    Every label that no feature cell takes at this level is a warning naming the label, the level and its size, and
    an entry of ``lost`` (``side``, ``label``, ``pixels``). ``labels_c`` is -1 where a content label has no style
    cell at this level (matched without the mask restriction).
    """
    labels_c, lost_c = majority_labels(content_mask, content_hw)
    labels_s, lost_s = majority_labels(style_mask, style_hw)
    lost = [{"side": "content", **d} for d in lost_c] + [{"side": "style", **d} for d in lost_s]
    for d in lost:
        warnings.warn(f"semantic masks at {tap}: {d['side']} label {d['label']} ({d['pixels']} px) has no feature "
                      f"cell at this level (its cells are {stride}x{stride} px and each goes to the label covering "
                      f"most of it); {'its positions take the neighbouring labels' if d['side'] == 'content' else 'its style is not used'} "
                      f"at {tap}", UserWarning, stacklevel=2)
    have = set(labels_s.unique().tolist())
    unrestricted = sorted(set(labels_c.unique().tolist()) - have)
    if unrestricted:
        warnings.warn(f"semantic masks at {tap}: content label(s) {unrestricted} have no style cell at this level; "
                      f"those content positions are matched without the mask restriction at {tap}", UserWarning,
                      stacklevel=2)
        labels_c = torch.where(torch.isin(labels_c, torch.tensor(unrestricted)), -1, labels_c)
    return labels_c, labels_s, lost, unrestricted


def check_masks(content_mask: torch.Tensor | None, style_mask: torch.Tensor | None,
                content_hw: tuple[int, int], style_hw: tuple[int, int],
                mask_files: tuple[str | Path | None, str | Path | None] = (None, None),
                image_names: tuple[str | None, str | None] = (None, None)) -> None:
    """Both masks or neither, each of its image's size (a :class:`DataError` naming the mask file, from
    ``mask_files``, and the image, from ``image_names``), and every content label in the style mask."""
    if (content_mask is None) != (style_mask is None):
        raise ConfigError("semantic masks need both a content mask and a style mask")
    if content_mask is None:
        return
    for m, hw, which, file, image in zip((content_mask, style_mask), (content_hw, style_hw), ("content", "style"),
                                         mask_files, image_names):
        if tuple(m.shape) != tuple(hw):
            raise DataError(file, f"{which} mask is {m.shape[1]}x{m.shape[0]} but the {which} image"
                                  f"{' ' + str(image) if image else ''} is {hw[1]}x{hw[0]}; a label map must have "
                                  "its image's size")
    missing = sorted(set(content_mask.unique().tolist()) - set(style_mask.unique().tolist()))
    if missing:
        raise ConfigError(f"content mask labels {missing} do not occur in the style mask; every content region "
                          "needs a style region with the same label")

"""Semantic masks for the transfer: content regions take their style from the style regions with the same label.

Masks are integer label maps at image resolution; each level uses them at its feature resolution (the label
covering most of each feature cell).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from genkit.errors import ConfigError, DataError

def load_mask(mask, name: str = "mask") -> torch.Tensor:
    """A label map as a (H, W) long tensor from a path (single-channel PNG), PIL image, array or tensor."""
    if isinstance(mask, (str, Path)):
        from genkit.io import read_label_map

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


def grid_labels(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Flat (h*w,) labels of a feature grid: the majority label of each cell (one-hot area pooling)."""
    labels, inverse = mask.unique(return_inverse=True)
    onehot = F.one_hot(inverse, labels.numel()).permute(2, 0, 1).float()[None]
    pooled = F.adaptive_avg_pool2d(onehot, hw)[0]
    return labels[pooled.argmax(0)].reshape(-1)


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

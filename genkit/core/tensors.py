"""PIL images <-> float tensors in [0, 1] (or another value range), rounded the one way genkit rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch loads lazily: `genkit --help` builds its parser without it
    import torch


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    import torch

    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def tensor_to_pil(t: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> Image.Image:
    """Float tensor (3, H, W) or (1, 3, H, W) in ``value_range`` -> RGB PIL image (rounded, clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    lo, hi = value_range
    t = ((t.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    arr = (t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)

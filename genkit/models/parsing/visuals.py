"""Colour-coded label maps for image grids and previews (through :meth:`LabelSchema.colorize`)."""

from __future__ import annotations

import numpy as np
import torch

from genkit.data.schemas import LabelSchema


def colorize_batch(labels: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """(B, H, W) labels -> (B, 3, H, W) float colours in [0, 1], on the labels' device."""
    rgb = np.stack([schema.colorize(m) for m in labels.detach().cpu()])  # (B, H, W, 3) uint8
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255.0).to(labels.device)

"""Cross-entropy class weights from label frequencies (median-frequency balancing).

Face masks are dominated by background, skin and hair; eyes, brows and the inner mouth cover well under 1%
of the pixels. Weighting each class by ``median(freq) / freq_c`` (Eigen & Fergus 2015), clipped to
``[1/max_weight, max_weight]``, keeps the small parts from being ignored without letting one rare class
dominate the loss.
"""

from __future__ import annotations

from typing import Iterable

import torch


def count_classes(batches: Iterable, num_classes: int, max_batches: int | None = None) -> torch.Tensor:
    """Pixel count per class (int64, shape (C,)) over the ``"mask"`` entries of up to ``max_batches`` batches."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        mask = batch["mask"] if isinstance(batch, dict) else batch[1]
        mask = mask.detach().long().flatten().cpu()
        if mask.numel() and (mask.min() < 0 or mask.max() >= num_classes):
            raise ValueError(f"mask values outside 0..{num_classes - 1} while counting class frequencies")
        counts += torch.bincount(mask, minlength=num_classes)
    return counts


def median_frequency_weights(counts: torch.Tensor, max_weight: float = 10.0) -> torch.Tensor:
    """Weights ``median(f) / f_c`` over the classes that occur; absent classes get weight 1.

    The result is clipped to ``[1 / max_weight, max_weight]``.
    """
    if max_weight < 1:
        raise ValueError(f"max_weight must be >= 1, got {max_weight}")
    counts = counts.double()
    total = counts.sum()
    if total <= 0:
        raise ValueError("no labelled pixels to compute class frequencies from")
    freq = counts / total
    present = freq > 0
    weights = torch.ones_like(freq)
    median = freq[present].median()
    weights[present] = median / freq[present]
    return weights.clamp(1.0 / max_weight, max_weight).float()

"""Segmentation scores shared by the face parser's validation and the mask-consistency metric.

torchmetrics' ``MulticlassJaccardIndex`` already leaves a class out of the macro mean IoU when it is absent from
both prediction and target, but with ``average=None`` it reports such a class as IoU 0, which reads as a total
miss. :func:`per_class_iou` reports it as NaN instead (no pixel of that class anywhere: no IoU), so per-class
tables and their ``nanmean`` agree with the mean IoU. A class present in only one of the two still scores 0.
"""

from __future__ import annotations

import math

from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex


def mean_iou(num_classes: int, ignore_index: int | None = None) -> MulticlassJaccardIndex:
    """Macro mean IoU over the classes present in the prediction or the target."""
    return MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore_index)


def per_class_iou(num_classes: int, ignore_index: int | None = None) -> MulticlassJaccardIndex:
    """IoU of every class (C,), NaN for a class absent from both prediction and target."""
    return MulticlassJaccardIndex(num_classes, average=None, ignore_index=ignore_index, zero_division=math.nan)


def pixel_accuracy(num_classes: int, ignore_index: int | None = None) -> MulticlassAccuracy:
    """Fraction of pixels labelled correctly."""
    return MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index)


__all__ = ("mean_iou", "per_class_iou", "pixel_accuracy")

"""Per-class IoU: a class absent from both prediction and target has no IoU (NaN), and mean IoU ignores it.

Both places that report per-class IoU are checked: the mask-consistency metric and the face parser's
validation logs (``val/iou/<class>``).
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from genkit.data.schemas import HELEN11
from genkit.metrics.mask_consistency import MaskConsistency
from genkit.metrics.segmentation import per_class_iou
from helpers import iou_example

pytestmark = pytest.mark.usefixtures("one_thread")


class LabelsFromImage(nn.Module):
    """A stand-in parser: the label of a pixel is ``round(10 * red)``, returned as one-hot logits."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        labels = (x[:, 0] * 10).round().long().clamp(0, self.num_classes - 1)
        return nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float() * self.scale


def _images_for(labels: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] that LabelsFromImage parses as ``labels``."""
    x = torch.zeros(labels.shape[0], 3, *labels.shape[1:])
    x[:, 0] = labels.float() / 10
    return x


PRED, TARGET, HAND_IOU, _ = iou_example()  # classes 0-2 by hand; 3-4 absent from both


def test_per_class_iou_of_absent_classes_is_nan_and_the_mean_ignores_them():
    metric = MaskConsistency(LabelsFromImage(5), input_range="unit")
    metric.update(_images_for(PRED), TARGET)
    out = metric.compute()
    iou = out["iou_per_class"]
    assert iou[:3].tolist() == pytest.approx(HAND_IOU, abs=1e-6)
    assert torch.isnan(iou[3:]).all(), f"classes absent from prediction and target must be NaN, got {iou}"
    assert out["miou"].item() == pytest.approx(sum(HAND_IOU) / 3, abs=1e-6)
    assert out["miou"].item() == pytest.approx(float(iou.nanmean()), abs=1e-6)
    # the batch scores of forward() follow the same rule
    batch = metric(_images_for(PRED), TARGET)
    assert torch.isnan(batch["iou_per_class"][3:]).all() and not torch.isnan(batch["iou_per_class"][:3]).any()


def test_a_class_in_only_one_of_prediction_or_target_scores_zero_not_nan():
    pred = torch.tensor([[[0, 3], [0, 0]]])  # class 3 predicted but not in the target: IoU 0, a real miss
    target = torch.tensor([[[0, 0], [0, 4]]])  # class 4 in the target but not predicted: IoU 0
    m = per_class_iou(5)
    iou = m(pred, target)
    assert iou[3].item() == 0.0 and iou[4].item() == 0.0
    assert torch.isnan(iou[1:3]).all()


def _perfect_batches(n: int = 2, size: int = 8) -> DataLoader:
    """Batches whose masks use only classes 0, 1 and 2 of helen11."""
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        mask = torch.randint(0, 3, (size, size), generator=g)
        items.append({"image": _images_for(mask[None])[0], "mask": mask, "name": f"m{i}"})
    return DataLoader(items, batch_size=2)


def test_parser_validation_logs_nan_for_absent_classes():
    from genkit.models.parsing.module import ParserModule

    model = ParserModule(schema="helen11", image_size=16, base_channels=4, depth=2, input_range="unit")
    model.net = LabelsFromImage(HELEN11.num_classes)  # parses perfectly: prediction == mask
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    out = trainer.validate(model, _perfect_batches(), verbose=False)[0]
    present, absent = HELEN11.classes[:3], HELEN11.classes[3:]
    assert all(out[f"val/iou/{c}"] == pytest.approx(1.0) for c in present)
    assert all(math.isnan(out[f"val/iou/{c}"]) for c in absent), {c: out[f"val/iou/{c}"] for c in absent}
    assert out["val/miou"] == pytest.approx(1.0)  # the mean is over the classes present only

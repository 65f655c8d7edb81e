"""Mask consistency: parser mIoU / pixel accuracy of generated images against target masks."""

import pytest
import torch
from torch import nn

from genkit.metrics.mask_consistency import MaskConsistency
from genkit.models.parsing import ParserNet
from helpers import iou_example


class FixedParser(nn.Module):
    """A 'parser' that returns one-hot logits of fixed label maps, whatever the image (for hand computation)."""

    def __init__(self, labels: torch.Tensor, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.register_buffer("labels", labels)
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        onehot = nn.functional.one_hot(self.labels[: x.shape[0]], self.num_classes).permute(0, 3, 1, 2).float()
        if onehot.shape[-2:] != x.shape[-2:]:
            onehot = nn.functional.interpolate(onehot, size=x.shape[-2:], mode="nearest")
        return onehot * self.scale


PRED, TARGET, HAND_IOU, HAND_ACC = iou_example()  # worked out by hand in tests/helpers.py (class 3 in neither)
HAND_MIOU = sum(HAND_IOU) / 3


def test_equals_hand_computed_miou_and_pixel_accuracy():
    metric = MaskConsistency(FixedParser(PRED, 4), input_range="unit")
    metric.update(torch.rand(1, 3, 4, 4), TARGET)
    out = metric.compute()
    assert out["miou"].item() == pytest.approx(HAND_MIOU, abs=1e-6)
    assert out["pixel_acc"].item() == pytest.approx(HAND_ACC, abs=1e-6)
    assert out["iou_per_class"][:3].tolist() == pytest.approx(HAND_IOU, abs=1e-6)


def test_accumulates_over_batches_and_resets():
    preds = torch.cat([PRED, TARGET])  # second image parsed perfectly
    metric = MaskConsistency(FixedParser(preds, 4), input_range="unit")
    metric.update(torch.rand(2, 3, 4, 4), torch.cat([TARGET, TARGET]))
    # pooled confusion: class 0 I=6 U=8, class 1 I=11 U=14, class 2 I=11 U=14
    expected = (6 / 8 + 11 / 14 + 11 / 14) / 3
    assert metric.compute()["miou"].item() == pytest.approx(expected, abs=1e-6)
    assert metric.compute()["pixel_acc"].item() == pytest.approx(28 / 32, abs=1e-6)
    metric.reset()
    metric.update(torch.rand(1, 3, 4, 4), TARGET)
    assert metric.compute()["miou"].item() == pytest.approx(HAND_MIOU, abs=1e-6)


def test_forward_returns_batch_scores():
    metric = MaskConsistency(FixedParser(PRED, 4), input_range="unit")
    batch = metric(torch.rand(1, 3, 4, 4), TARGET)
    assert batch["miou"].item() == pytest.approx(HAND_MIOU, abs=1e-6)


def test_symmetric_input_is_mapped_to_unit_and_parser_frozen():
    parser = FixedParser(PRED, 4)
    metric = MaskConsistency(parser, input_range="symmetric")
    metric.train()
    assert not parser.training and not parser.scale.requires_grad
    img = torch.full((1, 3, 4, 4), -1.0)
    metric.update(img, TARGET)
    assert torch.allclose(parser.seen[-1], torch.zeros(1, 3, 4, 4))


def test_parse_size_resizes_input_and_logits_back():
    parser = FixedParser(torch.zeros(1, 8, 8, dtype=torch.long), 4)
    metric = MaskConsistency(parser, input_range="unit", parse_size=8)
    metric.update(torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    assert parser.seen[-1].shape[-2:] == (8, 8)
    assert metric.compute()["pixel_acc"].item() == 1.0


def test_bad_shapes_are_clear_errors():
    metric = MaskConsistency(FixedParser(PRED, 4), input_range="unit")
    with pytest.raises(ValueError, match="do not match"):
        metric.update(torch.rand(1, 3, 4, 4), TARGET[:, :2])
    with pytest.raises(ValueError, match="num_classes"):
        MaskConsistency(nn.Identity())


def test_with_a_real_parser_network():
    torch.manual_seed(0)
    net = ParserNet(11, base_channels=4, depth=2)
    metric = MaskConsistency(net)
    masks = torch.randint(0, 11, (2, 16, 16))
    out = metric(torch.rand(2, 3, 16, 16) * 2 - 1, masks)
    assert 0.0 <= out["miou"].item() <= 1.0 and out["iou_per_class"].shape == (11,)
    assert not any(p.requires_grad for p in net.parameters())

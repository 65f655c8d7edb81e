"""Mask consistency: does a frozen face parser recover the target mask from a generated image?

:class:`MaskConsistency` runs the parser on each batch of generated images and accumulates torchmetrics'
:class:`~torchmetrics.classification.MulticlassJaccardIndex` (mIoU, macro over the classes present in the
prediction or the target; and per class, NaN for a class absent from both) and
:class:`~torchmetrics.classification.MulticlassAccuracy` (pixel accuracy) against the target masks. Those child
metrics do the distributed syncing.

    parser = load_parser("parser_helen.ckpt", expected_schema="helen11")
    metric = MaskConsistency(parser, input_range="symmetric")
    metric.update(fake_images, target_masks)
    metric.compute()  # {"miou": ..., "pixel_acc": ..., "iou_per_class": (C,)}
"""

from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.wrappers.abstract import WrapperMetric

from genkit.data.transforms import check_value_range, range_to_unit
from genkit.metrics.segmentation import mean_iou, per_class_iou, pixel_accuracy

class MaskConsistency(WrapperMetric):
    """mIoU and pixel accuracy of a frozen parser's prediction on generated images against the target masks.

    Args:
        parser: maps (B, 3, H, W) RGB in [0, 1] to logits (B, C, H, W) (e.g. a loaded ``ParserNet``). It is frozen
            (no gradients) and kept in eval mode.
        num_classes: defaults to ``parser.num_classes``.
        input_range: ``"symmetric"`` for images in [-1, 1], ``"unit"`` for [0, 1].
        parse_size: if given, images are resized (bilinear) to this square size before parsing and the logits
            are resized back to the mask size; use the parser's training size for generated images of another size.
        ignore_index: a target label excluded from both scores.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, parser: nn.Module, num_classes: int | None = None, input_range: str = "symmetric",
                 parse_size: int | None = None, ignore_index: int | None = None, **kwargs):
        super().__init__(**kwargs)
        check_value_range(input_range, "input_range")
        num_classes = num_classes if num_classes is not None else getattr(parser, "num_classes", None)
        if num_classes is None:
            raise ValueError("num_classes is required when the parser has no 'num_classes' attribute")
        self.parser = parser
        for p in self.parser.parameters():
            p.requires_grad_(False)
        self.parser.eval()
        self.num_classes = int(num_classes)
        self.input_range = input_range
        self.parse_size = parse_size
        self.miou = mean_iou(self.num_classes, ignore_index)
        self.iou_per_class = per_class_iou(self.num_classes, ignore_index)
        self.pixel_acc = pixel_accuracy(self.num_classes, ignore_index)

    def train(self, mode: bool = True) -> "MaskConsistency":
        super().train(mode)
        self.parser.eval()
        return self

    @torch.no_grad()
    def parse(self, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Parser labels (B, H, W) for ``images`` in the metric's input range."""
        x = range_to_unit(images.float(), self.input_range)
        out_size = size or tuple(x.shape[-2:])
        if self.parse_size is not None and tuple(x.shape[-2:]) != (self.parse_size, self.parse_size):
            x = F.interpolate(x, size=(self.parse_size, self.parse_size), mode="bilinear", align_corners=False)
        logits = self.parser(x.clamp(0, 1))
        if tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
        return logits.argmax(1)

    def _check(self, images: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
        if target_masks.dim() == 4 and target_masks.shape[1] == 1:
            target_masks = target_masks[:, 0]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if target_masks.shape != images.shape[:1] + images.shape[2:]:
            raise ValueError(f"target masks {tuple(target_masks.shape)} do not match images {tuple(images.shape)}")
        return target_masks.long()

    def update(self, images: torch.Tensor, target_masks: torch.Tensor) -> None:
        target_masks = self._check(images, target_masks)
        preds = self.parse(images)
        self.update_from_labels(preds, target_masks)

    def update_from_labels(self, preds: torch.Tensor, target_masks: torch.Tensor) -> None:
        """Accumulate already-parsed label maps (B, H, W) against the targets."""
        self.miou.update(preds, target_masks)
        self.iou_per_class.update(preds, target_masks)
        self.pixel_acc.update(preds, target_masks)

    def compute(self) -> dict[str, torch.Tensor]:
        return {"miou": self.miou.compute(), "pixel_acc": self.pixel_acc.compute(),
                "iou_per_class": self.iou_per_class.compute()}

    def forward(self, images: torch.Tensor, target_masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Accumulate the batch and return its own scores (not the running ones)."""
        target_masks = self._check(images, target_masks)
        preds = self.parse(images)
        return {"miou": self.miou(preds, target_masks), "pixel_acc": self.pixel_acc(preds, target_masks),
                "iou_per_class": self.iou_per_class(preds, target_masks)}

    def reset(self) -> None:
        self.miou.reset()
        self.iou_per_class.reset()
        self.pixel_acc.reset()

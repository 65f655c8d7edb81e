"""Parsing loss for generators: a frozen face parser must recover the target mask from a generated image.

The parser's parameters never receive gradients and the parser stays in eval mode (BatchNorm running
statistics are not touched) even when the owning module calls ``.train()``; the loss is still differentiable
with respect to the image, which is what the generator needs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.transforms import check_value_range, range_to_unit


class ParsingLoss(nn.Module):
    """Class-weighted cross-entropy of a frozen parser's prediction on ``image`` against ``target_mask``.

    Args:
        parser: a network mapping (B, 3, H, W) RGB in [0, 1] to logits (B, C, H, W), e.g. :class:`ParserNet`.
        class_weights: optional (C,) weights for the cross-entropy (e.g. inverse class frequencies).
        input_range: ``"symmetric"`` if images arrive in [-1, 1] (the GAN's range), ``"unit"`` for [0, 1].
    """

    def __init__(self, parser: nn.Module, class_weights: torch.Tensor | None = None,
                 input_range: str = "symmetric"):
        super().__init__()
        check_value_range(input_range, "input_range")
        self.parser = parser
        self.input_range = input_range
        for p in self.parser.parameters():
            p.requires_grad_(False)
        self.parser.eval()
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
            num_classes = getattr(parser, "num_classes", None)
            if num_classes is not None and class_weights.numel() != num_classes:
                raise ValueError(f"class_weights has {class_weights.numel()} entries, parser has {num_classes} classes")
            if (class_weights < 0).any() or not torch.isfinite(class_weights).all():
                raise ValueError("class_weights must be finite and non-negative")
        self.register_buffer("class_weights", class_weights, persistent=False)

    def train(self, mode: bool = True) -> "ParsingLoss":
        super().train(mode)
        self.parser.eval()  # frozen: BatchNorm statistics must stay those of the trained parser
        return self

    def forward(self, image: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        if target_mask.dim() == 4 and target_mask.shape[1] == 1:
            target_mask = target_mask[:, 0]
        if target_mask.shape != image.shape[:1] + image.shape[2:]:
            raise ValueError(f"target_mask {tuple(target_mask.shape)} does not match image {tuple(image.shape)}")
        logits = self.parser(range_to_unit(image, self.input_range))
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, target_mask.long(), weight=weight)

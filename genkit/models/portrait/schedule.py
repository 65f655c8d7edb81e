"""Learning-rate schedule of the portrait GAN: constant, then linear decay to zero (pix2pix / pix2pixHD)."""

from __future__ import annotations

import torch


class LinearDecay:
    """LR factor for epoch ``e``: 1 for ``constant`` epochs, then linearly down to ~0 over ``decay`` epochs."""

    def __init__(self, constant: int, decay: int):
        self.constant, self.decay = int(constant), int(decay)

    def __call__(self, epoch: int) -> float:
        if self.decay <= 0:
            return 1.0
        return max(0.0, 1.0 - max(0, epoch + 1 - self.constant) / float(self.decay + 1))


def constant_then_linear(optimizer: torch.optim.Optimizer, constant_epochs: int = 10,
                         decay_epochs: int = 45) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch ``LambdaLR``; configured as a ``_partial_`` Hydra target (``model.scheduler``). The defaults are
    the official schedule (scripts/train.sh: ``--niter 10 --niter_decay 45``)."""
    if constant_epochs < 0 or decay_epochs < 0:
        raise ValueError("constant_epochs and decay_epochs must be >= 0")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(constant_epochs, decay_epochs))

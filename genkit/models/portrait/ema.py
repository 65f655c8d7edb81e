"""Exponential moving average of the generator's weights, with a warm-up.

A fixed decay of 0.999 averages over ~1000 updates: in a run of a few hundred iterations the average is still
dominated by the random initial weights and is far worse than the trained generator. The decay here ramps up
with the number of updates ``n`` (as TensorFlow's ``ExponentialMovingAverage(num_updates=...)``)::

    decay_n = min(decay, (1 + n) / (warmup + n))

so early averages follow the weights closely and long runs average over ``1 / (1 - decay)`` updates.
Parameters *and* buffers are averaged (``torch.optim.swa_utils.AveragedModel``); the averaged copy is a
sub-module of the LightningModule, so checkpoints, resuming and export carry it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_decay(n: int, decay: float, warmup: float) -> float:
    """The decay used for update number ``n`` (``n`` >= 1 updates already averaged)."""
    if warmup <= 0:
        return decay
    return min(decay, (1.0 + n) / (warmup + n))


class WarmupEMA(AveragedModel):
    """A frozen EMA copy of ``module``; call :meth:`update_parameters` after each optimiser step."""

    def __init__(self, module: nn.Module, decay: float = 0.999, warmup: float = 10.0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"EMA warmup must be >= 0, got {warmup}")
        self.decay, self.warmup = float(decay), float(warmup)

        @torch.no_grad()
        def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
            d = warmup_decay(int(n_averaged), self.decay, self.warmup)
            if torch.is_floating_point(averaged[0]):
                torch._foreach_lerp_(averaged, current, 1.0 - d)
            else:  # integer buffers (e.g. batch-norm counters): keep the live value
                for a, c in zip(averaged, current):
                    a.copy_(c)

        super().__init__(module, multi_avg_fn=update, use_buffers=True)
        self.requires_grad_(False)

    @property
    def current_decay(self) -> float:
        """The decay the next update will use."""
        return warmup_decay(int(self.n_averaged), self.decay, self.warmup)

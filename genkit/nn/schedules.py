"""Learning-rate schedules for the ``model.scheduler`` configs, and the one helper modules use to build them.

Schedulers are configured as ``_partial_`` targets (``model.scheduler: {_target_: ..., _partial_: true}``) and
called with the optimizer. One that needs the length of the training takes a ``total_steps`` argument, which
:func:`lr_scheduler_config` fills in from the trainer (optimiser steps for ``interval: step``, epochs for
``interval: epoch``); any torch scheduler works as it is.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Callable

import torch

log = logging.getLogger(__name__)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                    final_lr_ratio: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from each group's LR to ``final_lr_ratio`` times it over ``total_steps``, then constant."""
    total = max(1, int(total_steps))

    def factor(step: int) -> float:
        t = min(step, total) / total
        return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _wants_total_steps(factory: Callable) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "total_steps" in params


def lr_scheduler_config(factory: Callable | None, optimizer: torch.optim.Optimizer, trainer,
                        interval: str = "step", name: str = "lr") -> dict | None:
    """Lightning's ``lr_scheduler`` dict for ``factory(optimizer)`` (``None`` without a factory).

    ``name`` is the LR panel the ``LearningRateMonitor`` logs (``lr``; a model with two optimisers uses e.g. ``lr/G``).
    """
    if factory is None:
        return None
    kwargs = {}
    if _wants_total_steps(factory):
        total = trainer.estimated_stepping_batches if interval == "step" else trainer.max_epochs
        if total is None or not math.isfinite(total) or total < 1:
            log.warning("the LR schedule needs the length of the training (trainer.max_steps or max_epochs); "
                        "training at a constant LR")
            return None
        kwargs["total_steps"] = int(total)
    return {"scheduler": factory(optimizer, **kwargs), "interval": interval, "name": name}

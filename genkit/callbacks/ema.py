"""Exponential moving average (EMA) of model weights.

Two ways to use it, both built on ``torch.optim.swa_utils.AveragedModel`` (EMA of parameters *and* buffers):

* inside a LightningModule: ``self.generator_ema = make_ema(self.generator, 0.999)`` and
  ``self.generator_ema.update_parameters(self.generator)`` after each optimiser step. The averaged copy is then
  part of the module's state dict, so checkpoints, resuming and export carry it (the portrait GAN does this);
* for any model, without touching its code: the :class:`EMA` callback. It averages ``pl_module`` (or one of its
  sub-modules, ``attribute="generator"``), swaps the averaged weights in for validation/test, and stores the
  average in the checkpoint (``checkpoint["callbacks"]``) so a resumed run continues the same average.
"""

from __future__ import annotations

import copy
import logging

import lightning as L
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

log = logging.getLogger(__name__)


def make_ema(module: nn.Module, decay: float = 0.999) -> AveragedModel:
    """A frozen EMA copy of ``module`` (parameters and buffers); update it with ``ema.update_parameters(module)``."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
    ema = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters and buffers of ``src`` into ``dst`` (same architecture)."""
    for a, b in zip(dst.parameters(), src.parameters()):
        a.copy_(b)
    for a, b in zip(dst.buffers(), src.buffers()):
        a.copy_(b)


class EMA(L.Callback):
    """Keep an EMA of a LightningModule's weights (or of ``getattr(pl_module, attribute)``).

    Args:
        decay: EMA decay per update.
        attribute: name of the sub-module to average; ``None`` averages the whole LightningModule.
        every_n_steps: update after every n-th optimiser step (``trainer.global_step``).
        start_step: plain copying (no averaging) before this step.
        evaluate_with_ema: swap the EMA weights in for validation and test (and back afterwards).
    """

    def __init__(self, decay: float = 0.999, attribute: str | None = None, every_n_steps: int = 1,
                 start_step: int = 0, evaluate_with_ema: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.attribute = attribute
        self.every_n_steps = max(1, int(every_n_steps))
        self.start_step = int(start_step)
        self.evaluate_with_ema = evaluate_with_ema
        self.ema: AveragedModel | None = None
        self._pending_state: dict | None = None
        self._backup: nn.Module | None = None
        self._last_step = -1

    @property
    def state_key(self) -> str:
        return f"EMA[attribute={self.attribute}]"

    def target(self, pl_module: L.LightningModule) -> nn.Module:
        if self.attribute is None:
            return pl_module
        if not hasattr(pl_module, self.attribute):
            raise AttributeError(f"EMA: {type(pl_module).__name__} has no attribute {self.attribute!r}")
        return getattr(pl_module, self.attribute)

    def _ensure(self, pl_module: L.LightningModule) -> AveragedModel:
        if self.ema is None:
            self.ema = make_ema(self.target(pl_module), self.decay)
            if self._pending_state is not None:
                self.ema.load_state_dict(self._pending_state)
                self._pending_state = None
        return self.ema

    def on_fit_start(self, trainer, pl_module) -> None:
        self._ensure(pl_module).to(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        ema = self._ensure(pl_module)
        if step < self.start_step:
            copy_weights(self.target(pl_module), ema.module)
        else:
            ema.update_parameters(self.target(pl_module))

    # --- evaluation with the averaged weights
    def _swap_in(self, pl_module) -> None:
        if not self.evaluate_with_ema or self.ema is None or self._backup is not None:
            return
        target = self.target(pl_module)
        self._backup = copy.deepcopy(target)
        copy_weights(self.ema.module, target)

    def _swap_out(self, pl_module) -> None:
        if self._backup is None:
            return
        copy_weights(self._backup, self.target(pl_module))
        self._backup = None

    def on_validation_start(self, trainer, pl_module) -> None:
        self._swap_in(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._swap_out(pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        self._swap_in(pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self._swap_out(pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # a checkpoint written during validation must hold the *trained* weights, not the swapped-in average
        if self._backup is not None:
            live = self._backup.state_dict()
            prefix = "" if self.attribute is None else f"{self.attribute}."
            for k, v in live.items():
                if prefix + k in checkpoint.get("state_dict", {}):
                    checkpoint["state_dict"][prefix + k] = v

    # --- persistence (checkpoint["callbacks"][state_key])
    def state_dict(self) -> dict:
        if self.ema is None:
            return {} if self._pending_state is None else {"ema": self._pending_state, "decay": self.decay}
        return {"ema": self.ema.state_dict(), "decay": self.decay}

    def load_state_dict(self, state_dict: dict) -> None:
        if not state_dict:
            return
        if self.ema is not None:
            self.ema.load_state_dict(state_dict["ema"])
        else:
            self._pending_state = state_dict["ema"]

    def averaged_state_dict(self) -> dict:
        """The averaged weights in the target's own key names (for export)."""
        if self.ema is None:
            raise RuntimeError("EMA has not been initialised (no fit has started)")
        return self.ema.module.state_dict()

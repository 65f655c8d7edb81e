"""Stop a fit whose loss or weights are no longer finite, and never write such weights as a checkpoint.

Lightning finishes a diverged run with exit 0 and keeps NaN weights as ``last.ckpt`` and "best"; every later command
would use them silently. :class:`StopOnNonFinite` checks the training step's loss (and the ``train/`` values a step
logs, for manually optimised models such as the portrait GAN) after every step and the parameters every
``check_parameters_every_n_steps`` steps, and raises :class:`NonFiniteError` (one line naming the step:
``genkit-train`` exits non-zero). Whatever the cadence, a checkpoint about to be written with non-finite weights
stops the run instead (Lightning runs this callback's ``on_save_checkpoint`` before the file is written).
"""

from __future__ import annotations


import lightning as L
import torch

from genkit.core.checkpoints import nonfinite_tensors
from genkit.core.errors import GenkitError


class NonFiniteError(GenkitError):
    """Training diverged: a loss or a weight became NaN or infinite."""

    exit_code = 1


def _losses(outputs) -> dict[str, torch.Tensor]:
    if torch.is_tensor(outputs):
        return {"loss": outputs}
    if isinstance(outputs, dict):
        return {k: v for k, v in outputs.items() if torch.is_tensor(v) and v.is_floating_point()}
    return {}


class StopOnNonFinite(L.Callback):
    def __init__(self, check_parameters_every_n_steps: int = 1):
        if check_parameters_every_n_steps < 0:
            raise ValueError("check_parameters_every_n_steps must be >= 0 (0: only before a checkpoint is written)")
        self.every = check_parameters_every_n_steps

    def _stop(self, trainer: L.Trainer, what: str) -> None:
        raise NonFiniteError(f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): "
                             f"{what}; stopped, no checkpoint of these weights was written (lower the learning "
                             "rate, e.g. model.optimizer.lr, or resume an earlier checkpoint)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = {**_losses(outputs), **{k: v for k, v in trainer.callback_metrics.items()
                                         if k.startswith("train/") and torch.is_tensor(v) and v.numel() == 1}}
        for name, value in values.items():
            if not bool(torch.isfinite(value.detach()).all()):
                self._stop(trainer, f"{name} is {float(value.detach().reshape(-1)[0])}")
        if self.every and trainer.global_step % self.every == 0:
            bad = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
            if bad:
                self._stop(trainer, f"parameter {bad[0]} is no longer finite"
                                    + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        bad = nonfinite_tensors(checkpoint.get("state_dict") or {})
        if bad:
            self._stop(trainer, f"weight {bad[0]} is not finite")


__all__ = ["NonFiniteError", "StopOnNonFinite"]

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


def _first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first tensor holding a NaN or infinity, or ``None`` (one device sync per device, not one per
    tensor: a check of every parameter at every step stays cheap on a GPU)."""
    by_device: dict[torch.device, list[str]] = {}
    for name, t in tensors.items():
        by_device.setdefault(t.device, []).append(name)
    for names in by_device.values():
        finite = torch.stack([torch.isfinite(tensors[n].detach()).all() for n in names])
        if not bool(finite.all()):
            return names[int((~finite).nonzero()[0])]
    return None


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
        bad = _first_non_finite(values)
        if bad is not None:
            self._stop(trainer, f"{bad} is {float(values[bad].detach().reshape(-1)[0])}")
        if self.every and trainer.global_step % self.every == 0:
            bad = _first_non_finite(dict(pl_module.named_parameters()))
            if bad is not None:
                self._stop(trainer, f"parameter {bad} is no longer finite")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        bad = nonfinite_tensors(checkpoint.get("state_dict") or {})
        if bad:
            self._stop(trainer, f"weight {bad[0]} is not finite")


__all__ = ["NonFiniteError", "StopOnNonFinite"]

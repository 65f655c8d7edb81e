"""What an exact resume needs beyond Lightning's own checkpoint state: the random states and the epoch position.

Lightning restores weights, optimiser, scheduler and loop counters, but not the global random states, and
restarts an interrupted epoch's data from its beginning. This callback stores the torch/numpy/Python random states
and how many batches of the current epoch were trained on; on resume it puts the random states back when training
starts and makes the :class:`~genkit.data.sampling.EpochSampler` skip the batches already seen. With the datamodules'
seeded order and per-sample augmentation seeds, a run stopped and resumed ends with the same weights as one that ran
through (single process; on several processes each rank skips its own part of the epoch in the same way).
"""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch

from genkit.data.sampling import EpochSampler

log = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """The global random states as tensors and plain types (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState(L.Callback):
    def __init__(self):
        self.epoch = 0
        self.batches_done = 0  # of the current epoch
        self._loaded: dict | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch, self.batches_done = trainer.current_epoch, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # runs before ModelCheckpoint's hook (Lightning orders checkpoint callbacks last), so a checkpoint written
        # at this step counts this batch
        self.epoch, self.batches_done = trainer.current_epoch, batch_idx + 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng(), "epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer, pl_module) -> None:
        state, self._loaded = self._loaded, None
        if state is None:
            return
        self.epoch, self.batches_done = state["epoch"], state["batches_done"]
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if self.batches_done and isinstance(sampler, EpochSampler):
            sampler.resume(self.epoch, self.batches_done * loader.batch_size)
            # Lightning warns that a plain loader restarts the epoch; this one continues where it stopped
            warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        elif self.batches_done:
            log.warning("resuming in the middle of epoch %d with a data loader genkit cannot fast-forward: the epoch's "
                        "data restarts from its beginning", self.epoch)
        restore_rng(state["rng"])

"""Checkpointing that also covers a stopped run: cluster pre-emption (SIGTERM) and Ctrl+C (SIGINT).

Lightning turns SIGTERM into ``SIGTERMException`` at the end of the current training step (all DDP ranks
together). :class:`PreemptibleCheckpoint` makes the first Ctrl+C do the same (a second one aborts at once, saving
nothing) and, on that exception, writes ``last.ckpt`` through the trainer's checkpoint IO (atomic with
:class:`~genkit.training.callbacks.atomic_checkpoint.AtomicCheckpointIO`). Crashes save nothing: a half-done step is no
state to resume from. ``genkit-train`` then exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT).
It also makes ``last.ckpt`` hold the final weights when training ends between two periodic checkpoints.
"""

from __future__ import annotations

import signal
import sys
import threading

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException


class PreemptibleCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) that saves when the run is stopped by SIGTERM or Ctrl+C."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_signal: int | None = None    # the signal that stopped the run, once one did
        self.stop_checkpoint: str | None = None  # what was saved then
        self._previous_sigint = None
        self._trainer = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop_signal, self.stop_checkpoint, self._trainer = None, None, trainer
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        # SIGTERM: Lightning registers its handler after on_fit_start and chains the one it finds, so by the
        # time training runs its handler sets trainer.received_sigterm; nothing to add here.

    def _on_sigint(self, signum, frame) -> None:
        if self.stop_signal == signal.SIGINT or self._trainer is None:
            raise KeyboardInterrupt  # second Ctrl+C: abort now
        self.stop_signal = signal.SIGINT
        self._trainer._signal_connector.received_sigterm = True  # the loops stop at the end of this step
        print("\ngenkit-train: Ctrl+C: stopping after this step and saving a checkpoint "
              "(Ctrl+C again aborts without saving)", file=sys.stderr, flush=True)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        if self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        if (trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING
                or trainer.global_step == 0):
            return  # nothing trained yet: nothing worth resuming
        candidates = self._monitor_candidates(trainer)
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
            self.stop_checkpoint = self.last_model_path
        else:
            self.stop_checkpoint = self.format_checkpoint_name(candidates)
            self._save_checkpoint(trainer, self.stop_checkpoint)

    def on_train_end(self, trainer, pl_module) -> None:
        # Lightning writes last.ckpt at the end only when nothing was saved before, so a run that stops on
        # max_steps between two epoch checkpoints would leave a stale last.ckpt: make it the final weights
        if (self.save_last and not trainer.fast_dev_run and trainer.global_step > 0
                and self._last_global_step_saved != trainer.global_step):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if not trainer.fast_dev_run:  # Lightning would write a last.ckpt even for fast_dev_run
            super().on_train_end(trainer, pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore_sigint()
        self._trainer = None

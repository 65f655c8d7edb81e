"""Checkpoint writing that survives a kill: temp file in the same folder, fsync, ``os.replace``.

Lightning's default writer goes through a temporary file elsewhere and ``shutil.move`` (a copy across file
systems), so a run killed while saving can leave a truncated ``last.ckpt``. With this plugin the previous
checkpoint stays intact until the new one is complete.
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from genkit.core.checkpoints import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

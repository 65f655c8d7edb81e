"""Write the run record into every checkpoint: the resolved config and the W&B run id of the run that wrote it.

``ckpt_path=last`` uses it to skip fast_dev_run checkpoints and to show (and guard) what changed on a resume;
``train=false`` takes the model config from it, so a checkpoint can be evaluated without repeating its overrides.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from genkit.training.runs import RUN_KEY


class RunRecord(L.Callback):
    def __init__(self, config: dict, **info: Any):
        self.config = config
        self.info = info  # e.g. wandb_id, task_name

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[RUN_KEY] = {"config": self.config, **self.info}

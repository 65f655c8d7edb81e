"""Save and log image grids of what a model produces.

A model opts in by implementing ``visuals(batch) -> list[(caption, images)]`` where ``images`` are
``(B, 3, H, W)`` tensors in [0, 1]: each entry becomes one row of the grid, one column per sample
(e.g. mask | target | result | transfer). The grid is written as PNG under ``dirpath`` (atomically) and logged to
every logger that can show images (W&B, TensorBoard).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid

from genkit.core.saving import save_image


def compose_grid(rows: list[tuple[str, torch.Tensor]], max_items: int = 8) -> torch.Tensor:
    """Rows of ``(B, 3, H, W)`` images -> one ``(3, H', W')`` grid (row i = entry i)."""
    if not rows:
        raise ValueError("no rows to compose")
    n = min(max_items, min(r.shape[0] for _, r in rows))
    size = rows[0][1].shape[-2:]
    tiles = []
    for _, images in rows:
        images = images[:n].detach().float().cpu().clamp(0, 1)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != size:
            images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
        tiles.append(images)
    return make_grid(torch.cat(tiles), nrow=n, padding=2, pad_value=1.0)


def log_grid(trainer: L.Trainer, key: str, grid: torch.Tensor, caption: str, step: int) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], caption=[caption], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step)


class ImageGridLogger(L.Callback):
    def __init__(self, every_n_steps: int = 100, dirpath: str | None = None, max_items: int = 8,
                 on_validation: bool = True):
        self.every_n_steps = every_n_steps
        self.dirpath = dirpath
        self.max_items = max_items
        self.on_validation = on_validation
        self.saved: list[Path] = []

    def _emit(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, tag: str) -> None:
        if not hasattr(pl_module, "visuals") or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            rows = pl_module.visuals(batch)
        pl_module.train(was_training)
        if not rows:
            return
        grid = compose_grid(rows, self.max_items)
        caption = " | ".join(name for name, _ in rows) + " (rows, top to bottom)"
        step = trainer.global_step
        if self.dirpath:
            path = Path(self.dirpath) / f"{tag}_step{step:07d}.png"
            save_image(grid, path, metadata={"rows": [n for n, _ in rows], "step": step, "tag": tag,
                                             **_weights_metadata()})
            self.saved.append(path)
        log_grid(trainer, f"{tag}/grid", grid, caption, step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and not trainer.sanity_checking:
            self._emit(trainer, pl_module, batch, "train")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self.on_validation and batch_idx == 0 and not trainer.sanity_checking:
            self._emit(trainer, pl_module, batch, "val")


def _weights_metadata() -> dict:
    from genkit.core import weights

    return {"weights": weights.provenance(), "random_weights": weights.used_random_weights()}

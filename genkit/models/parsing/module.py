"""The face parser's LightningModule: training, validation metrics, image grids and checkpoint metadata."""

from __future__ import annotations

import functools
import logging
import math
from typing import Callable

import lightning as L
import torch
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from genkit.data.schemas import LabelSchema, get_schema
from genkit.data.transforms import check_value_range, range_to_unit
from genkit.core.errors import CheckpointError, ConfigError
from genkit.core.hparams import factory, plain
from genkit.metrics.segmentation import per_class_iou
from genkit.models.parsing.checkpoint import CHECKPOINT_KEY, check_schema, make_info_block, read_info
from genkit.models.parsing.class_weights import count_classes, median_frequency_weights
from genkit.models.parsing.network import ParserNet
from genkit.nn.schedules import cosine_schedule, lr_scheduler_config

log = logging.getLogger(__name__)

CLASS_WEIGHT_MODES = ("auto", "none")
DEFAULT_OPTIMIZER = functools.partial(torch.optim.AdamW, lr=3.0e-3, weight_decay=1.0e-4)
DEFAULT_SCHEDULER = functools.partial(cosine_schedule)  # to 1% of the LR at the end of training


def segmentation_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """mIoU (macro over the classes present) and pixel accuracy, logged as ``{prefix}miou`` / ``{prefix}pixel_acc``."""
    return MetricCollection(
        {"miou": MulticlassJaccardIndex(num_classes, average="macro"),
         "pixel_acc": MulticlassAccuracy(num_classes, average="micro")},
        prefix=prefix,
    )


class ParserModule(L.LightningModule):
    """Trains a :class:`ParserNet` with class-weighted cross-entropy.

    Args:
        schema: label schema of the data (built-in name such as ``helen11`` / ``celebamask19`` or a schema
            file); the number of classes comes from it. Must equal the datamodule's ``schema``.
        image_size: training resolution (stored in checkpoints; the default for ``genkit parse``).
        base_channels, depth: network size (see :class:`ParserNet`).
        optimizer: ``params -> Optimizer`` (a ``_partial_`` config or callable, e.g. ``torch.optim.AdamW``);
            ``None``: :data:`DEFAULT_OPTIMIZER`, with ``lr`` / ``weight_decay`` when given (the shortcut for
            Python users).
        scheduler: ``optimizer -> LR scheduler`` (``_partial_``; one with a ``total_steps`` argument gets the
            training length, see :mod:`genkit.nn.schedules`), stepped every ``scheduler_interval``; ``None``: constant LR.
            Default: cosine decay to 1% at the end of training. Its LR panel is ``lr``.
        class_weights: ``"auto"`` (median-frequency balancing from up to ``class_weight_batches`` training
            batches at the start of training), ``"none"`` (unweighted) or a list of one weight per class.
        max_class_weight: clip for the automatic weights.
        input_range: value range of the batches' images: ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1]).
    """

    def __init__(self, schema: str = "helen11", image_size: int = 256, base_channels: int = 32, depth: int = 4,
                 optimizer: Callable | dict | None = None, scheduler: Callable | dict | None = DEFAULT_SCHEDULER,
                 scheduler_interval: str = "step", lr: float | None = None, weight_decay: float | None = None,
                 class_weights: str | list[float] = "auto", max_class_weight: float = 10.0,
                 class_weight_batches: int = 50, input_range: str = "unit"):
        super().__init__()
        if not isinstance(class_weights, str):
            class_weights = [float(w) for w in class_weights]  # plain list (not a Hydra ListConfig) in hparams
        schema = str(schema)
        if optimizer is not None and (lr is not None or weight_decay is not None):
            raise ConfigError("give the learning rate in model.optimizer (lr= / weight_decay= are the shortcut "
                              "for when no optimizer is given)")
        shortcut = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}
        self.optimizer_factory = factory(optimizer if optimizer is not None else shortcut or None,
                                         DEFAULT_OPTIMIZER, "optimizer")
        self.scheduler_factory = None if scheduler is None else factory(scheduler, DEFAULT_SCHEDULER, "scheduler")
        # the run's config is logged once by genkit-train (logger=False); the factories are stored as they run
        self.save_hyperparameters(logger=False, ignore=["optimizer", "scheduler", "lr", "weight_decay"])
        self.hparams.optimizer = plain(self.optimizer_factory)
        self.hparams.scheduler = plain(self.scheduler_factory)
        self.schema: LabelSchema = get_schema(schema)
        c = self.schema.num_classes
        try:
            check_value_range(input_range, "model.input_range")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if scheduler_interval not in ("step", "epoch"):
            raise ConfigError(f"model.scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if image_size % (2 ** depth):
            raise ConfigError(f"model.image_size={image_size} must be divisible by 2**depth = {2 ** depth}")
        self.net = ParserNet(c, base_channels=base_channels, depth=depth)
        self.register_buffer("class_weights", self._initial_weights(class_weights, c))
        self.val_metrics = segmentation_metrics(c, "val/")
        self.test_metrics = segmentation_metrics(c, "test/")
        self.val_iou = per_class_iou(c)  # NaN for a class absent from both prediction and mask
        self.test_iou = per_class_iou(c)

    @staticmethod
    def _initial_weights(class_weights, c: int) -> torch.Tensor:
        if isinstance(class_weights, str):
            if class_weights not in CLASS_WEIGHT_MODES:
                raise ConfigError(f"model.class_weights must be 'auto', 'none' or a list of {c} numbers, "
                                  f"got {class_weights!r}")
            return torch.full((c,), math.nan) if class_weights == "auto" else torch.ones(c)
        w = torch.tensor(class_weights, dtype=torch.float32)
        if w.numel() != c:
            raise ConfigError(f"model.class_weights has {w.numel()} entries but the schema has {c} classes")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise ConfigError("model.class_weights must be finite and non-negative")
        return w

    # ------------------------------------------------------------------------------------------ set-up
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        dm_schema = getattr(dm, "schema", None)
        if dm_schema is not None and tuple(dm_schema.classes) != self.schema.classes:
            raise ConfigError(f"the data's schema {dm_schema.name!r} ({dm_schema.num_classes} classes) differs from "
                              f"the parser's {self.schema.name!r} ({self.schema.num_classes} classes); set "
                              "model.schema=${data.target_schema}")
        hp = getattr(dm, "hparams", {})
        if "image_size" in hp and hp["image_size"] != self.hparams.image_size:
            raise ConfigError(f"data.image_size={hp['image_size']} but model.image_size={self.hparams.image_size}; "
                              "they must agree (the checkpoint records the training size)")
        if "value_range" in hp and hp["value_range"] != self.hparams.input_range:
            raise ConfigError(f"data.value_range={hp['value_range']!r} but model.input_range="
                              f"{self.hparams.input_range!r}; they must agree")

    def on_train_start(self) -> None:
        if not torch.isnan(self.class_weights).any():
            return  # configured, or restored from a checkpoint
        counts = count_classes(self.trainer.train_dataloader, self.schema.num_classes,
                               self.hparams.class_weight_batches).to(self.device)
        counts = self.trainer.strategy.reduce(counts.double(), reduce_op="sum")  # same weights on every rank
        weights = median_frequency_weights(counts, self.hparams.max_class_weight)
        self.class_weights.copy_(weights.to(self.class_weights))
        log.info("parser class weights (median frequency): %s",
                 ", ".join(f"{n}={w:.2f}" for n, w in zip(self.schema.classes, weights.tolist())))

    # ----------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for images in the batch value range."""
        return self.net(range_to_unit(x, self.hparams.input_range))

    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.class_weights
        return F.cross_entropy(logits, mask, weight=None if torch.isnan(w).any() else w)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]), batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["mask"].shape[0])
        return loss

    def _eval_step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["mask"])
        preds = logits.argmax(1)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        per_class = self.val_iou if stage == "val" else self.test_iou
        metrics.update(preds, batch["mask"])
        per_class.update(preds, batch["mask"])
        bs = batch["mask"].shape[0]
        self.log(f"{stage}/loss", loss, batch_size=bs, sync_dist=True)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=bs)
        return loss

    def _log_per_class(self, stage: str) -> None:
        per_class = self.val_iou if stage == "val" else self.test_iou
        iou = per_class.compute()
        per_class.reset()
        # compute() already synced the states across processes; sync_dist only keeps Lightning from warning
        self.log_dict({f"{stage}/iou/{name}": v for name, v in zip(self.schema.classes, iou)}, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_per_class("val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_per_class("test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch["image"] if isinstance(batch, dict) else batch
        return self(images).argmax(1)

    # ------------------------------------------------------------------------------------- image grids
    def visuals(self, batch: dict) -> list[tuple[str, torch.Tensor]]:
        """photo | truth | prediction (label maps colour-coded with the schema)."""
        images = batch["image"]
        with torch.no_grad():
            preds = self(images).argmax(1)
        return [("photo", range_to_unit(images, self.hparams.input_range).clamp(0, 1)),
                ("truth", self.schema.colorize_batch(batch["mask"])),
                ("prediction", self.schema.colorize_batch(preds))]

    # --------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        opt = self.optimizer_factory(params=self.net.parameters())
        sched = lr_scheduler_config(self.scheduler_factory, opt, self.trainer, self.hparams.scheduler_interval)
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}

    # ------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = make_info_block(self.schema, self.hparams.image_size, self.net)
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if hasattr(dm, "provenance"):  # what it was trained on: users of a synthetic-face parser get warned
            checkpoint[CHECKPOINT_KEY]["training"] = dm.provenance()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = read_info(checkpoint, "checkpoint")
        check_schema(info.schema, self.schema, "checkpoint")
        if info.network != make_info_block(self.schema, self.hparams.image_size, self.net)["network"]:
            raise CheckpointError(f"checkpoint network {info.network} differs from this model's "
                                  f"(base_channels={self.net.base_channels}, depth={self.net.depth})")


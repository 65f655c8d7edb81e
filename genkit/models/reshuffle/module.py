"""LightningModule that trains the decoders of the fast path on any image folder.

``target="next_level"`` (default, as the official release): for levels ``relu4_1, relu3_1, relu2_1`` it trains
``relu4_1 -> relu3_1``, ``relu3_1 -> relu2_1`` and ``relu2_1 -> image``. Each level-to-level decoder is trained on
the frozen encoder's true activations: its output must equal the encoder's lower-level features (``level``,
normalised MSE) and have their per-channel mean and standard deviation (``stats``: MSE regression alone shrinks
the output towards the mean, and down a chain of decoders that makes stylisations flat and dark). Optionally
(``cycle_weight``) it must also, run forward through the encoder again, reproduce its input (it costs
reconstruction accuracy: docs/style-transfer.md).
The image decoder gets pixel MSE + perceptual MSE (VGG features of its output vs the input at
``perceptual_taps``) + feature MSE at its own tap.
``chain_weight``: every decoder below the first is also trained on its predecessor's output (detached) against
the same true targets, so it learns to take decoded features, which is what it gets when stylising.
``target="image"`` trains the format-1 ``tap -> image`` decoders (the image-decoder loss at every level).

The optimiser (and optional LR scheduler) are Hydra ``_partial_`` configs (``model.optimizer``,
``model.scheduler``). The encoder is not stored in checkpoints (it is rebuilt from the weights registry); its
identity is, and a checkpoint only loads for the same encoder and decoder structure.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import lightning as L
import torch
from torch.nn import functional as F

from genkit.core.errors import CheckpointError
from genkit.core.hparams import factory, plain
from genkit.models.reshuffle.config import DEFAULT_LEVELS
from genkit.models.reshuffle.decoders import ReshuffleDecoders, check_encoder, checkpoint_record
from genkit.nn.vgg import VGG19_RELU_INDEX, VGG19Encoder

DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=1.0e-4)  # torch's betas and weight decay


def normalized_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x, target) / target.detach().pow(2).mean().clamp_min(1e-8)


def channel_stats_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the per-image, per-channel mean and standard deviation, normalised like
    :func:`normalized_mse`."""
    dims = (2, 3)
    err = (x.mean(dims) - target.mean(dims)).pow(2).mean() + (x.std(dims) - target.std(dims)).pow(2).mean()
    return err / target.detach().pow(2).mean().clamp_min(1e-8)


class ReshuffleDecoderModule(L.LightningModule):
    def __init__(self, levels: Sequence[str] = DEFAULT_LEVELS, width: float = 1.0, target: str = "next_level",
                 optimizer: Any = None, scheduler: Any = None, pixel_weight: float = 1.0,
                 perceptual_weight: float = 1.0, feature_weight: float = 1.0, level_weight: float = 1.0,
                 cycle_weight: float = 0.0, stats_weight: float = 1.0, chain_weight: float = 1.0,
                 perceptual_taps: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 allow_random: bool = False, vgg_weights: str | None = None, vgg_variant: str = "torchvision"):
        super().__init__()
        # plain Python types, so checkpoints load with weights_only=True (Hydra passes ListConfig)
        levels = [str(t) for t in levels]
        perceptual_taps = [str(t) for t in perceptual_taps]
        unknown = [t for t in levels + perceptual_taps if t not in VGG19_RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG-19 taps {unknown}")
        order = [VGG19_RELU_INDEX[t] for t in levels]
        if order != sorted(order, reverse=True) or len(set(order)) != len(order):
            raise ValueError(f"levels must go coarse to fine without repeats, got {levels}")
        self.make_optimizer = factory(optimizer, DEFAULT_OPTIMIZER, "optimizer")
        self.make_scheduler = factory(scheduler, None, "scheduler")
        self.save_hyperparameters(logger=False)
        # plain data only (checkpoints load with weights_only): the factories as they run
        self.hparams.levels, self.hparams.perceptual_taps = levels, perceptual_taps
        self.hparams.optimizer, self.hparams.scheduler = plain(self.make_optimizer), plain(self.make_scheduler)
        taps = sorted(set(levels) | set(perceptual_taps), key=VGG19_RELU_INDEX.__getitem__)
        self.encoder = VGG19Encoder.from_option(taps, vgg_weights, allow_random, vgg_variant)
        self.decoders = ReshuffleDecoders(levels, width=width, target=target)

    # --------------------------------------------------------------------------------------- losses
    def _image_losses(self, tap: str, x: torch.Tensor, ref: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        x_hat = self.decoders.to_image(ref[tap], tap)
        feats = self.encoder(x_hat, taps=set(hp.perceptual_taps) | {tap})
        pix = F.mse_loss(x_hat, x)
        perc = sum(F.mse_loss(feats[t], ref[t]) for t in hp.perceptual_taps) / max(1, len(hp.perceptual_taps))
        feat = F.mse_loss(feats[tap], ref[tap])
        loss = hp.pixel_weight * pix + hp.perceptual_weight * perc + hp.feature_weight * feat
        return {"pixel": pix, "perceptual": perc, "feature": feat, "loss": loss}

    def _level_losses(self, tap: str, next_tap: str, ref: dict[str, torch.Tensor],
                      inputs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        hp = self.hparams
        h = self.decoders.to_next(ref[tap] if inputs is None else inputs, tap, next_tap)
        target = ref[next_tap]
        level = normalized_mse(h, target)
        stats = channel_stats_error(h, target)
        out = {"level": level, "stats": stats, "loss": hp.level_weight * level + hp.stats_weight * stats,
               "output": h}
        if hp.cycle_weight > 0:
            out["cycle"] = normalized_mse(self.encoder.forward_from(h, next_tap, tap), ref[tap])
            out["loss"] = out["loss"] + hp.cycle_weight * out["cycle"]
        return out

    def _losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        with torch.no_grad():
            ref = self.encoder(x)
        out: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        parts = []
        if self.decoders.target == "image":
            parts = [(tap, self._image_losses(tap, x, ref)) for tap in hp.levels]
        else:
            decoded = None  # the previous decoder's output: what this decoder is fed when stylising
            for a, b in zip(hp.levels, hp.levels[1:]):
                direct = self._level_losses(a, b, ref)
                parts.append((f"{a}_to_{b}", direct))
                output = direct["output"]
                if decoded is not None and hp.chain_weight > 0:
                    chained = self._level_losses(a, b, ref, decoded.detach())
                    parts.append((f"{a}_to_{b}/chained", {**chained, "loss": hp.chain_weight * chained["loss"]}))
                    output = chained["output"]
                decoded = output
            last = hp.levels[-1]
            parts.append((f"{last}_to_image", self._image_losses(last, x, ref)))
            if decoded is not None and hp.chain_weight > 0:
                x_hat = self.decoders.to_image(decoded.detach(), last)
                pix = F.mse_loss(x_hat, x)
                parts.append((f"{last}_to_image/chained", {"pixel": pix, "loss": hp.chain_weight * hp.pixel_weight * pix}))
        for name, losses in parts:
            for k, v in losses.items():
                if k != "output":
                    out[f"{name}/{k}"] = v.detach()
            total = total + losses["loss"]
        out["loss"] = total
        return out

    def _step(self, batch, stage: str) -> torch.Tensor:
        x = batch["image"]
        losses = self._losses(x)
        self.log(f"{stage}/loss", losses["loss"], prog_bar=True, batch_size=x.shape[0])
        for k, v in losses.items():
            if k != "loss":
                self.log(f"{stage}/{k}", v, batch_size=x.shape[0])
        return losses["loss"]

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        opt = self.make_optimizer(params=self.decoders.parameters())
        if self.make_scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.make_scheduler(optimizer=opt), "name": "lr"}}

    # --------------------------------------------------------------------------------------- visuals
    @torch.no_grad()
    def visuals(self, batch) -> list[tuple[str, torch.Tensor]]:
        """The input and its reconstruction from every level (next-level decoders: through the chain)."""
        x = batch["image"]
        feats = self.encoder(x, taps=self.hparams.levels)
        rows = [("input", x)]
        rows += [(f"decoded {tap}", self.decoders.decode(feats[tap], tap)) for tap in self.hparams.levels]
        return rows

    # --------------------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Drop the frozen encoder (rebuilt from the registry) and record what the decoders invert."""
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("encoder.")}
        checkpoint["genkit"] = checkpoint_record(self.decoders, self.encoder)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        record = checkpoint.get("genkit") or {}
        have = record.get("levels")
        if have is not None and list(have) != list(self.hparams.levels):
            raise CheckpointError(f"checkpoint holds decoders for levels {have}, this model has {self.hparams.levels}")
        target = record.get("target", "image")
        if record and target != self.decoders.target:
            raise CheckpointError(f"checkpoint holds {target!r} decoders, this model trains {self.decoders.target!r} "
                                  "decoders (model.target)")
        check_encoder(record.get("encoder"), self.encoder, "checkpoint")
        state = checkpoint["state_dict"]
        for k, v in self.encoder.state_dict().items():
            state.setdefault(f"encoder.{k}", v)

    def export(self, path) -> None:
        """Write a compact decoder file (no optimiser state) for ``genkit stylize --decoder``."""
        from genkit.models.reshuffle.decoders import save_decoders

        save_decoders(path, self.decoders, self.encoder)

"""LightningModule that trains the per-level decoders of the fast path on any image folder.

For every level tap the decoder must invert the frozen VGG-19 encoder: ``x -> enc_tap(x) -> dec_tap -> x_hat``.
Loss per level: pixel MSE + perceptual MSE (VGG features of ``x_hat`` vs ``x`` at ``perceptual_taps``) +
feature MSE at the level's own tap (what stylisation needs most: decoding a feature map faithfully). The
encoder is not stored in checkpoints (it is rebuilt from the weights registry); its identity is, and a
checkpoint only loads for the same encoder and level set.
"""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
from torch.nn import functional as F

from genkit.errors import CheckpointError
from genkit.models.reshuffle.config import DEFAULT_LEVELS
from genkit.models.reshuffle.decoders import ReshuffleDecoders, checkpoint_record, encoder_identity
from genkit.nn.vgg import VGG19_RELU_INDEX, VGG19Encoder


class ReshuffleDecoderModule(L.LightningModule):
    def __init__(self, levels: Sequence[str] = DEFAULT_LEVELS, width: float = 1.0, lr: float = 1e-4,
                 betas: Sequence[float] = (0.9, 0.999), weight_decay: float = 0.0, pixel_weight: float = 1.0,
                 perceptual_weight: float = 1.0, feature_weight: float = 1.0,
                 perceptual_taps: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 allow_random: bool = False, vgg_weights: str | None = None):
        super().__init__()
        # plain Python types, so checkpoints load with weights_only=True (Hydra passes ListConfig)
        levels = [str(t) for t in levels]
        perceptual_taps = [str(t) for t in perceptual_taps]
        betas = [float(b) for b in betas]
        unknown = [t for t in levels + perceptual_taps if t not in VGG19_RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG-19 taps {unknown}")
        self.save_hyperparameters()
        taps = sorted(set(levels) | set(perceptual_taps), key=VGG19_RELU_INDEX.__getitem__)
        weights = "random" if vgg_weights == "random" else "imagenet"
        path = None if vgg_weights in (None, "random") else vgg_weights
        self.encoder = VGG19Encoder(taps=taps, weights=weights, allow_random=allow_random, weights_path=path)
        self.decoders = ReshuffleDecoders(levels, width=width)

    # --------------------------------------------------------------------------------------- losses
    def _losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        with torch.no_grad():
            ref = self.encoder(x)
        out: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        for tap in hp.levels:
            x_hat = self.decoders(ref[tap], tap)
            feats = self.encoder(x_hat, taps=set(hp.perceptual_taps) | {tap})
            pix = F.mse_loss(x_hat, x)
            perc = sum(F.mse_loss(feats[t], ref[t]) for t in hp.perceptual_taps) / max(1, len(hp.perceptual_taps))
            feat = F.mse_loss(feats[tap], ref[tap])
            loss = hp.pixel_weight * pix + hp.perceptual_weight * perc + hp.feature_weight * feat
            for name, value in (("pixel", pix), ("perceptual", perc), ("feature", feat), ("loss", loss)):
                out[f"{tap}/{name}"] = value.detach()
            total = total + loss
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
        hp = self.hparams
        return torch.optim.Adam(self.decoders.parameters(), lr=hp.lr, betas=tuple(hp.betas),
                                weight_decay=hp.weight_decay)

    # --------------------------------------------------------------------------------------- visuals
    @torch.no_grad()
    def visuals(self, batch) -> list[tuple[str, torch.Tensor]]:
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
        theirs = (record.get("encoder") or {}).get("fingerprint")
        mine = encoder_identity(self.encoder)["fingerprint"]
        if theirs is not None and theirs != mine:
            raise CheckpointError("checkpoint decoders were trained for a different VGG-19 encoder "
                                  f"({'random' if record['encoder'].get('random') else theirs}) than this one "
                                  f"({'random' if self.encoder.random_weights else mine})")
        state = checkpoint["state_dict"]
        for k, v in self.encoder.state_dict().items():
            state.setdefault(f"encoder.{k}", v)

    def export(self, path) -> None:
        """Write a compact decoder file (no optimiser state) for ``genkit stylize --decoder``."""
        from genkit.models.reshuffle.decoders import save_decoders

        save_decoders(path, self.decoders, self.encoder)

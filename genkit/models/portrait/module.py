"""PortraitGAN: the LightningModule that trains the mask-guided portrait generator (paper A).

Manual optimisation with two Adam optimisers (G: the whole generator; D: both discriminators). Iterations
alternate between

* **paired** steps: reconstruct each face from its own mask and components; losses: adversarial (paired
  discriminator) + feature matching + masked VGG + pixel L1 + local component reconstruction (+ KL) (+ parsing);
* **unpaired** steps (every ``unpaired_every``-th iteration): each sample keeps its mask and background but takes
  a random subset of its components from another face of the batch; losses: adversarial (transfer
  discriminator) + L1/VGG on the pixels whose components were *not* swapped (and the background) + local (+ KL)
  (+ parsing: the result must still parse into the target mask).

``trainer.global_step`` counts training iterations (the D step is not counted twice). Learning rates follow a
constant-then-linear-decay schedule per epoch (``LambdaLR`` schedulers, stepped manually at epoch start, saved in
checkpoints). An EMA of the generator (``ema_decay``) is used for validation, images and export.

Frozen helpers (VGG, face parser, metric networks) are not written into checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
from itertools import chain

import lightning as L
import torch

from genkit.data.schemas import get_schema
from genkit.data.transforms import one_hot, to_unit
from genkit.errors import CheckpointError, ConfigError
from genkit.models.portrait import checkpoint as ckpt_io
from genkit.models.portrait.components import dilate
from genkit.models.portrait.encoders import ComponentCodes
from genkit.models.portrait.generator import PortraitGenerator
from genkit.models.portrait.losses import (AdversarialLoss, MaskedPerceptualLoss, PIX2PIXHD_VGG, build_vgg,
                                           feature_matching_loss, kl_divergence, masked_l1)
from genkit.nn.blocks import MultiScaleDiscriminator

log = logging.getLogger(__name__)

# widths for tests, benchmarks of the smallest case and quick CPU runs (the defaults are the full-size model)
TINY_WIDTHS = dict(latent_dim=32, feature_channels=16, encoder_channels=8, encoder_max_channels=32, ngf=8,
                   n_res_blocks=2, background_channels=8, ndf=8, d_layers=2)

# sub-modules that are frozen copies of external networks: kept out of checkpoints
FROZEN_PREFIXES = ("perceptual.", "parsing_loss.", "val_metrics.")


class LinearDecay:
    """LR factor: 1 for ``constant`` epochs, then linearly down to ~0 over ``decay`` epochs (pix2pix schedule)."""

    def __init__(self, constant: int, decay: int):
        self.constant, self.decay = int(constant), int(decay)

    def __call__(self, epoch: int) -> float:
        if self.decay <= 0:
            return 1.0
        return max(0.0, 1.0 - max(0, epoch + 1 - self.constant) / float(self.decay + 1))


@contextlib.contextmanager
def uncounted_step(optimizer):
    """Step a LightningOptimizer without advancing ``trainer.global_step``.

    Under manual optimisation Lightning counts every ``optimizer.step()``; a GAN would then advance two steps per
    batch. The D step is wrapped in this so that ``global_step`` equals training iterations.
    """
    before = getattr(optimizer, "_on_before_step", None)
    after = getattr(optimizer, "_on_after_step", None)
    if before is None or after is None:
        yield
        return
    optimizer._on_before_step = optimizer._on_after_step = lambda: None
    try:
        yield
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


def colorize(mask: torch.Tensor, schema) -> torch.Tensor:
    """(B, H, W) labels -> (B, 3, H, W) colours in [0, 1]."""
    palette = torch.tensor(schema.colors, dtype=torch.float32, device=mask.device) / 255.0
    return palette[mask.clamp(0, schema.num_classes - 1)].permute(0, 3, 1, 2)


class PortraitGAN(L.LightningModule):
    def __init__(
        self,
        schema: str = "helen11",
        image_size: int = 256,
        # generator
        latent_dim: int = 512,
        feature_channels: int = 256,
        encoder_channels: int = 32,
        encoder_max_channels: int = 256,
        bottleneck_channels: int = 64,
        variational: bool = False,
        ngf: int = 64,
        n_res_blocks: int = 9,
        background: bool = True,
        background_channels: int = 32,
        background_gate: bool = True,
        gate_dilation: int = 8,
        background_ring: int = 8,
        mask_full_components: bool = True,
        norm: str = "instance",
        # discriminators
        ndf: int = 64,
        d_layers: int = 3,
        d_scales: int = 2,
        d_norm: str = "instance",
        spectral_norm: bool = False,
        # losses
        gan_mode: str = "bce",
        lambda_adv: float = 1.0,
        lambda_fm: float = 10.0,
        lambda_vgg: float = 10.0,
        lambda_l1: float = 10.0,
        lambda_local: float = 10.0,
        lambda_kl: float = 0.01,
        lambda_parsing: float = 1.0,
        vgg_layers: dict | None = None,
        parser_checkpoint: str | None = None,
        parser_random_init: bool = False,
        parser_class_weights: list | None = None,
        # schedule
        unpaired_every: int = 2,
        swap_probability: float = 0.5,
        lr: float = 2e-4,
        lr_d: float | None = None,
        beta1: float = 0.5,
        beta2: float = 0.999,
        constant_epochs: int = 10,
        decay_epochs: int = 10,
        ema_decay: float | None = 0.999,
        # validation
        val_lpips: bool = True,
        val_fid: bool | str = False,
        allow_random: bool = False,
    ):
        super().__init__()
        # plain containers only (Hydra may pass DictConfig/ListConfig): checkpoints must load with weights_only
        vgg_layers = None if vgg_layers is None else {str(k): float(v) for k, v in dict(vgg_layers).items()}
        parser_class_weights = None if parser_class_weights is None else [float(v) for v in parser_class_weights]
        self.save_hyperparameters()
        self.automatic_optimization = False
        if unpaired_every < 0:
            raise ConfigError("unpaired_every must be >= 0 (0 = only paired steps)")
        if not 0.0 <= swap_probability <= 1.0:
            raise ConfigError("swap_probability must be in [0, 1]")
        self.schema = get_schema(schema)

        self.generator = PortraitGenerator(
            schema=self.schema, image_size=image_size, latent_dim=latent_dim, feature_channels=feature_channels,
            encoder_channels=encoder_channels, encoder_max_channels=encoder_max_channels,
            bottleneck_channels=bottleneck_channels, variational=variational,
            ngf=ngf, n_res_blocks=n_res_blocks, background=background, background_channels=background_channels,
            background_gate=background_gate, gate_dilation=gate_dilation,
            mask_full_components=mask_full_components, norm=norm)
        d_in = self.schema.num_classes + 3
        self.d_paired = MultiScaleDiscriminator(d_in, d_scales, ndf, d_layers, norm=d_norm, spectral=spectral_norm)
        self.d_transfer = MultiScaleDiscriminator(d_in, d_scales, ndf, d_layers, norm=d_norm, spectral=spectral_norm)

        self.adversarial = AdversarialLoss(gan_mode)
        self.perceptual = None
        if lambda_vgg > 0:
            layers = vgg_layers or PIX2PIXHD_VGG
            self.perceptual = MaskedPerceptualLoss(build_vgg(allow_random, tuple(layers)), layers)
        # the parser (when configured) serves the parsing loss and the mask-consistency metric
        self.parsing_loss = self._build_parsing_loss()

        self.generator_ema = None
        if ema_decay:
            from genkit.callbacks.ema import make_ema

            self.generator_ema = make_ema(self.generator, float(ema_decay))
        self.ring_pixels = max(0, round(background_ring * image_size / 256))
        self.val_metrics = None  # built in setup() (needs the device and optional weights)
        self._checked_batch = False

    # ---------------------------------------------------------------------------------------- helpers
    def _build_parsing_loss(self):
        from genkit.models.parsing import ParserNet, ParsingLoss, load_parser

        hp = self.hparams
        if hp.parser_checkpoint:
            parser = load_parser(hp.parser_checkpoint, expected_schema=self.schema)
            multiple = getattr(parser, "multiple", 1)
            if hp.image_size % multiple:
                raise ConfigError(f"parser {hp.parser_checkpoint} needs image sizes divisible by {multiple}, "
                                  f"the portrait model uses {hp.image_size}")
        elif hp.parser_random_init:
            if not hp.allow_random:
                raise ConfigError("model.parser_random_init=true uses a RANDOM face parser (meaningless parsing loss); "
                                  "it needs weights.allow_random=true, or give model.parser_checkpoint")
            from genkit import weights

            weights.warn_random("face-parser", "the portrait parsing loss")
            depth = 2 if hp.image_size < 64 else 3
            parser = ParserNet(self.schema.num_classes, base_channels=8, depth=depth)
        else:
            log.warning("portrait: no parser checkpoint (model.parser_checkpoint=null): parsing loss and mask "
                     "consistency disabled")
            return None
        return ParsingLoss(parser, class_weights=hp.parser_class_weights, input_range="symmetric")

    @property
    def inference_generator(self) -> PortraitGenerator:
        """The generator used for validation, images and export: the EMA copy when enabled."""
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    @property
    def parser(self):
        return None if self.parsing_loss is None else self.parsing_loss.parser

    def _check_batch(self, batch: dict) -> None:
        if self._checked_batch:
            return
        image, mask = batch["image"], batch["mask"]
        names = batch.get("name", [])
        where = f" (batch with {', '.join(map(str, names[:3]))}{'...' if len(names) > 3 else ''})" if names else ""
        try:
            self.generator.check_inputs(image, mask)
        except ValueError as exc:
            raise ConfigError(f"portrait model input{where}: {exc}") from None
        if float(image.min()) >= 0.0 and float(image.max()) <= 1.0 and float(image.mean()) > 0.05:
            log.warning("portrait: input images look like [0, 1]; the model expects [-1, 1] "
                        "(data.value_range=symmetric)")
        self._checked_batch = True

    def _check_datamodule(self) -> None:
        trainer = getattr(self, "_trainer", None)
        dm = getattr(trainer, "datamodule", None) if trainer is not None else None
        hp = getattr(dm, "hparams", None)
        if hp is None:
            return
        vr = hp.get("value_range")
        if vr is not None and vr != "symmetric":
            raise ConfigError(f"the portrait GAN works on images in [-1, 1]: set data.value_range=symmetric "
                              f"(got {vr!r})")
        size = hp.get("image_size")
        if size is not None and int(size) != self.hparams.image_size:
            raise ConfigError(f"data.image_size={size} but model.image_size={self.hparams.image_size}; "
                              "they must match")
        schema = getattr(dm, "schema", None)
        if schema is not None and tuple(schema.classes) != tuple(self.schema.classes):
            raise ConfigError(f"data schema {schema.name!r} differs from the model schema {self.schema.name!r}")

    def _enable_unused_parameters_in_ddp(self) -> None:
        """Each iteration trains one of the two discriminators, and the G step runs with D frozen: under DDP some
        parameters get no gradient, which DDP only accepts with ``find_unused_parameters=True``."""
        from lightning.pytorch.strategies import DDPStrategy

        trainer = getattr(self, "_trainer", None)
        strategy = getattr(trainer, "strategy", None)
        kwargs = getattr(strategy, "_ddp_kwargs", None)
        if not isinstance(strategy, DDPStrategy) or kwargs is None:
            return
        if not kwargs.get("find_unused_parameters", False):
            log.info("portrait: enabling find_unused_parameters for DDP (alternating discriminators)")
            kwargs["find_unused_parameters"] = True

    def setup(self, stage: str) -> None:
        self._check_datamodule()
        if stage == "fit":
            self._enable_unused_parameters_in_ddp()
        if self.val_metrics is None and stage in ("fit", "validate", "test"):
            from genkit.models.portrait.evaluation import PortraitMetrics

            hp = self.hparams
            fid = hp.val_fid
            if fid == "auto":  # on when the Inception weights are installed, or random weights are allowed
                from genkit import weights

                fid = hp.allow_random or weights.status("inception-fid") == "present"
            elif not isinstance(fid, bool):
                raise ConfigError(f"model.val_fid must be true, false or auto, got {fid!r}")
            self.val_metrics = PortraitMetrics(parser=self.parser, lpips=hp.val_lpips, fid=fid,
                                               allow_random=hp.allow_random, num_classes=self.schema.num_classes)

    # ---------------------------------------------------------------------------------- the two passes
    def swap_plan(self, batch_size: int, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A derangement of the batch and, per sample, which components to take from the other face
        (each with ``swap_probability``, at least one)."""
        names = self.generator.component_names
        shift = int(torch.randint(1, batch_size, (1,), generator=generator))
        perm = torch.roll(torch.arange(batch_size), shifts=shift)
        take = torch.rand(batch_size, len(names), generator=generator) < self.hparams.swap_probability
        none = ~take.any(1)
        forced = torch.randint(0, len(names), (batch_size,), generator=generator)
        take[none, forced[none]] = True
        dev = self.device
        return perm.to(dev), {n: take[:, i].to(dev) for i, n in enumerate(names)}

    def background_input(self, mask: torch.Tensor, training: bool) -> torch.Tensor:
        """The background pixels shown to the background encoder. In training a random ring around the face is
        hidden, so the network learns to fill background that the target image does not show (edited masks)."""
        bg = self.generator.background_mask(mask)
        if training and self.ring_pixels > 0:
            r = int(torch.randint(0, self.ring_pixels + 1, (1,)))
            bg = bg * (1.0 - dilate(1.0 - bg, r))
        return bg

    def component_losses(self, codes: ComponentCodes, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        out = {}
        if hp.lambda_local > 0:
            recon = self.generator.decode_components(codes)
            terms = []
            for name, rec in recon.items():
                w = codes.presence[name].to(rec.dtype).view(-1, 1, 1, 1)  # absent parts have nothing to rebuild
                diff = (rec.float() - inputs[name].float()).abs().mean(dim=(1, 2, 3), keepdim=True)
                terms.append((diff * w).sum() / w.sum().clamp_min(1.0))
            out["local"] = torch.stack(terms).mean()
        if self.generator.variational and hp.lambda_kl > 0:
            out["kl"] = torch.stack([kl_divergence(codes.mu[n], codes.logvar[n]) for n in codes.names]).mean()
        return out

    def generator_pass(self, image: torch.Tensor, mask: torch.Tensor, paired: bool) -> dict:
        """Generator losses for one batch (no optimiser work); returns losses, ``loss`` and ``fake``."""
        hp = self.hparams
        G = self.generator
        layout = G.layout
        inputs = layout.extract(image, mask)
        codes = G.embedding.encode(inputs, layout.presence(mask), sample=G.variational)
        losses = self.component_losses(codes, inputs)
        bg_in = self.background_input(mask, training=True)
        fg = 1.0 - G.background_mask(mask)
        if paired:
            used, keep, D = codes, None, self.d_paired
        else:
            perm, take = self.swap_plan(image.shape[0])
            used = codes.mix(codes.index(perm), take)
            keep = G.background_mask(mask)
            for name in G.component_names:
                keep = keep + layout.region(mask, name) * (~take[name]).to(keep.dtype).view(-1, 1, 1, 1)
            keep = keep.clamp(0, 1)
            D = self.d_transfer
        fake = G.synthesize(mask, used, image, bg_in)
        cond = one_hot(mask, self.schema.num_classes).to(fake.dtype)
        fake_out = D(torch.cat([cond, fake], 1))
        losses["adv"] = self.adversarial.generator(fake_out)
        if paired:
            if hp.lambda_fm > 0:
                with torch.no_grad():
                    real_out = D(torch.cat([cond, image.to(fake.dtype)], 1))
                losses["fm"] = feature_matching_loss(real_out, fake_out)
            losses["l1"] = masked_l1(fake, image)
            if self.perceptual is not None:
                losses["vgg"] = self.perceptual(fake, image, fg)
        else:
            losses["l1"] = masked_l1(fake, image, keep)
            if self.perceptual is not None:
                losses["vgg"] = self.perceptual(fake, image, keep * fg)
        if self.parsing_loss is not None and hp.lambda_parsing > 0:
            losses["parsing"] = self.parsing_loss(fake, mask)
        weights = {"adv": hp.lambda_adv, "fm": hp.lambda_fm, "l1": hp.lambda_l1, "vgg": hp.lambda_vgg,
                   "local": hp.lambda_local, "kl": hp.lambda_kl, "parsing": hp.lambda_parsing}
        total = sum(weights[k] * v for k, v in losses.items())
        return {"loss": total, "losses": losses, "fake": fake, "cond": cond, "paired": paired}

    def discriminator_pass(self, image: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, paired: bool) -> dict:
        D = self.d_paired if paired else self.d_transfer
        real_out = D(torch.cat([cond, image.to(fake.dtype)], 1))
        fake_out = D(torch.cat([cond, fake.detach()], 1))
        loss = self.adversarial.discriminator(real_out, fake_out)
        return {"loss": loss}

    def is_paired_step(self, step: int, batch_size: int) -> bool:
        k = self.hparams.unpaired_every
        if batch_size < 2 or k == 0:
            return True
        return step % k != k - 1

    def set_discriminators_trainable(self, flag: bool) -> None:
        for p in chain(self.d_paired.parameters(), self.d_transfer.parameters()):
            p.requires_grad_(flag)

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int):
        self._check_batch(batch)
        image, mask = batch["image"], batch["mask"]
        opt_g, opt_d = self.optimizers()
        paired = self.is_paired_step(self.global_step, image.shape[0])

        self.set_discriminators_trainable(False)
        g = self.generator_pass(image, mask, paired)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g["loss"])
        opt_g.step()

        self.set_discriminators_trainable(True)
        d = self.discriminator_pass(image, g["fake"], g["cond"], paired)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d["loss"])
        with uncounted_step(opt_d):
            opt_d.step()

        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

        kind = "paired" if paired else "unpaired"
        logs = {f"train/{kind}/{k}": v.detach() for k, v in g["losses"].items()}
        logs.update({"train/g_loss": g["loss"].detach(), "train/d_loss": d["loss"].detach()})
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=image.shape[0])
        self.log("train/l1", g["losses"]["l1"].detach(), prog_bar=True, on_step=True, batch_size=image.shape[0])
        return g["loss"].detach()

    def on_train_epoch_start(self) -> None:
        """Bring the LR schedulers to the current epoch (constant, then linear decay).

        Done at epoch *start* and idempotently (``last_epoch`` is set from ``current_epoch``), so a run that
        stopped mid-epoch - where Lightning still calls the epoch-end hooks - and was resumed from any checkpoint
        follows exactly the same schedule as an uninterrupted one.
        """
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for s in schedulers if isinstance(schedulers, list) else [schedulers]:
            if s.last_epoch != self.current_epoch:
                s.last_epoch = self.current_epoch - 1
                s.step()

    def configure_optimizers(self):
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=betas)
        opt_d = torch.optim.Adam(chain(self.d_paired.parameters(), self.d_transfer.parameters()),
                                 lr=hp.lr_d or hp.lr, betas=betas)
        decay = LinearDecay(hp.constant_epochs, hp.decay_epochs)
        sch_g = torch.optim.lr_scheduler.LambdaLR(opt_g, decay)
        sch_d = torch.optim.lr_scheduler.LambdaLR(opt_d, LinearDecay(hp.constant_epochs, hp.decay_epochs))
        return [opt_g, opt_d], [sch_g, sch_d]

    # --------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def transfer_all(self, generator: PortraitGenerator, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each face rendered with all components of the next face of the batch (its own mask and background)."""
        codes = generator.encode(image, mask)
        perm = torch.roll(torch.arange(image.shape[0], device=image.device), 1)
        return generator.synthesize(mask, codes.index(perm), image)

    def _eval_step(self, batch: dict, prefix: str) -> None:
        self._check_batch(batch)
        image, mask = batch["image"], batch["mask"]
        G = self.inference_generator
        recon = G(image, mask)
        b = image.shape[0]
        self.log(f"{prefix}/l1", (recon.float() - image.float()).abs().mean() / 2.0, on_epoch=True,
                 prog_bar=prefix == "val", batch_size=b, sync_dist=True)
        fg = 1.0 - G.background_mask(mask)
        self.log(f"{prefix}/l1_face", masked_l1(recon, image, fg) / 2.0, on_epoch=True, batch_size=b,
                 sync_dist=True)
        transfer = self.transfer_all(G, image, mask) if b > 1 else None
        if self.val_metrics is not None:
            self.val_metrics.update(real=image, recon=recon, transfer=transfer, mask=mask)

    def _eval_epoch_end(self, prefix: str) -> None:
        if self.val_metrics is None:
            return
        for k, v in self.val_metrics.compute().items():
            self.log(f"{prefix}/{k}", v, sync_dist=True)
        self.val_metrics.reset()

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    @torch.no_grad()
    def visuals(self, batch: dict) -> list[tuple[str, torch.Tensor]]:
        """Rows for the image grid: mask | target | result (reconstruction) | transfer (next face's components)."""
        image = batch["image"].to(self.device)
        mask = batch["mask"].to(self.device)
        G = self.inference_generator
        rows = [("mask", colorize(mask, self.schema)), ("target", to_unit(image)), ("result", to_unit(G(image, mask)))]
        if image.shape[0] > 1:
            rows.append(("transfer", to_unit(self.transfer_all(G, image, mask))))
        return [(name, t.float().clamp(0, 1)) for name, t in rows]

    # ------------------------------------------------------------------------------------- checkpoints
    def checkpoint_block(self) -> dict:
        from genkit import weights

        block = ckpt_io.make_block(self.generator.config(), self.generator_ema is not None)
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        source = getattr(getattr(dm, "hparams", None), "get", lambda k: None)("source")
        block["training"] = {"weights": weights.provenance(), "random_weights": weights.used_random_weights(),
                             "data_source": source, "synthetic_data": source == "synthetic"}
        return block

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[ckpt_io.CHECKPOINT_KEY] = self.checkpoint_block()
        state = checkpoint.get("state_dict", {})
        for k in [k for k in state if k.startswith(FROZEN_PREFIXES)]:
            del state[k]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        block = ckpt_io.read_block(checkpoint)
        ckpt_io.compare_configs(block["generator"], self.generator.config())
        if block.get("ema", False) != (self.generator_ema is not None):
            raise CheckpointError(f"checkpoint was trained with ema={block.get('ema')} but model.ema_decay="
                                  f"{self.hparams.ema_decay}; set model.ema_decay accordingly to resume")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # frozen helpers are not in checkpoints: keep the ones this module was built with
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(FROZEN_PREFIXES)}
        for k, v in super().state_dict().items():
            if k.startswith(FROZEN_PREFIXES):
                state_dict[k] = v
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def export(self, path, use_ema: bool = True):
        """Write the inference generator (EMA weights when available) as a small file for the editor."""
        gen = self.inference_generator if use_ema else self.generator
        return ckpt_io.export_generator(gen, path, ema=use_ema and self.generator_ema is not None,
                                        training=self.checkpoint_block()["training"])

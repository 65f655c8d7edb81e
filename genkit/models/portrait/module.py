"""PortraitGAN: the LightningModule that trains the mask-guided portrait generator (paper A).

Manual optimisation with two optimisers (G: the whole generator; D: both discriminators). Iterations alternate
between

* **paired** steps: reconstruct each face from its own mask and components; losses: adversarial (paired
  discriminator) + feature matching + masked VGG + pixel L1 + local component reconstruction (+ KL) (+ parsing).
  Some samples have their hair removed from the target mask, with the true background as ground truth
  (synthetic faces), so the generator learns to fill what an edit uncovers;
* **transfer** steps (every ``scheme.unpaired_every``-th iteration): each sample keeps its mask and background but
  takes a random subset of its components from another face of the batch; losses: adversarial (transfer
  discriminator) + L1/VGG where nothing was swapped + the swapped components' colour statistics against the
  donor's (appearance) + local (+ KL) (+ parsing).

Every generated image is pasted into its photo (:meth:`PortraitGenerator.render`): outside the edit region the
result is the photo, so losses and discriminators see exactly what a user gets. In training the background
encoder is shown the photo only beyond a random distance from the face (``scheme.hide_*``).

``trainer.global_step`` counts training iterations (the D step is not counted twice). Learning rates follow the
``scheduler`` per epoch (set at epoch start, saved in checkpoints; LR panels ``lr/G`` and ``lr/D``). The EMA of the
generator has a warm-up; validation evaluates both the raw and the EMA generator and remembers the better one
(by ``val/l1``), which the editor uses by default. VAE codes have the prior's second moment by construction (the
encoders scale their means) and a KL term that trades information against noise.

Frozen helpers (VGG, face parser, metric networks) are not written into checkpoints.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from itertools import chain

import lightning as L
import torch
from torch import nn

from genkit.data.schemas import get_schema
from genkit.data.transforms import one_hot, to_unit
from genkit.core.errors import CheckpointError, ConfigError
from genkit.models.portrait import checkpoint as ckpt_io
from genkit.models.portrait import compositing
from genkit.models.portrait.components import dilate
from genkit.core.hparams import build, factory, plain
from genkit.models.portrait.config import ParserSettings, TrainingScheme, ValidationSettings
from genkit.models.portrait.ema import WarmupEMA
from genkit.models.portrait.schedule import constant_then_linear
from genkit.models.portrait.encoders import ComponentCodes
from genkit.models.portrait.generator import PortraitGenerator
from genkit.models.portrait.holes import free_form_holes
from genkit.models.portrait.losses import (PIX2PIXHD_VGG, AdversarialLoss, LossWeights, MaskedPerceptualLoss,
                                           appearance_loss, balanced_l1, build_vgg, feature_matching_loss,
                                           kl_divergence, masked_l1, second_moment)
from genkit.nn.blocks import MultiScaleDiscriminator
from genkit.nn.schedules import lr_scheduler_config

log = logging.getLogger(__name__)

# the default factories: the authors' Adam; the schedule's and the EMA's numbers are their functions' defaults
DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=2.0e-4, betas=(0.5, 0.999))
DEFAULT_SCHEDULER = functools.partial(constant_then_linear)
DEFAULT_EMA = functools.partial(WarmupEMA)
SCHEDULER_INTERVALS = ("epoch", "step")

# sub-modules that are frozen copies of external networks: kept out of checkpoints
FROZEN_PREFIXES = ("perceptual.", "parsing_loss.", "val_metrics.")
SELECTION_METRIC = "l1"  # validation metric that picks the raw or the EMA generator (lower is better)


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


class PortraitGAN(L.LightningModule):
    """See the module docstring and :mod:`genkit.models.portrait.config` for the sub-configs."""

    def __init__(self, schema: str = "helen11", image_size: int = 256, generator: dict | None = None,
                 discriminator: dict | None = None, losses: dict | None = None, scheme: dict | None = None,
                 optimizer_g=DEFAULT_OPTIMIZER, optimizer_d=DEFAULT_OPTIMIZER, scheduler=DEFAULT_SCHEDULER,
                 scheduler_interval: str = "epoch", ema=DEFAULT_EMA, parser: dict | None = None,
                 validation: dict | None = None, allow_random: bool = False):
        super().__init__()
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ConfigError(f"model.scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.make_optimizer_g = factory(optimizer_g, DEFAULT_OPTIMIZER, "optimizer_g")
        self.make_optimizer_d = factory(optimizer_d, DEFAULT_OPTIMIZER, "optimizer_d")
        self.make_scheduler = factory(scheduler, DEFAULT_SCHEDULER, "scheduler")
        make_ema = None if ema is None or ema is False else factory(ema, DEFAULT_EMA, "ema")
        # plain data only (checkpoints load with weights_only): the factories as they run, defaults included
        hparams = dict(schema=str(schema), image_size=int(image_size), generator=plain(generator),
                       discriminator=plain(discriminator), losses=plain(losses), scheme=plain(scheme),
                       optimizer_g=plain(self.make_optimizer_g), optimizer_d=plain(self.make_optimizer_d),
                       scheduler=plain(self.make_scheduler), scheduler_interval=str(scheduler_interval),
                       ema=plain(make_ema), parser=plain(parser), validation=plain(validation),
                       allow_random=bool(allow_random))
        self.save_hyperparameters(hparams, logger=False)  # genkit-train logs the resolved config once
        self.automatic_optimization = False
        self.schema = get_schema(schema)
        hp = self.hparams

        self.losses: LossWeights = build(hp.losses, LossWeights, "losses")
        self.scheme: TrainingScheme = build(hp.scheme, TrainingScheme, "scheme")
        self.parser_settings: ParserSettings = build(hp.parser, ParserSettings, "parser")
        self.validation_settings: ValidationSettings = build(hp.validation, ValidationSettings, "validation")

        self.generator: PortraitGenerator = build(hp.generator, PortraitGenerator, "generator", schema=self.schema,
                                                  image_size=int(image_size))
        d_in = self.schema.num_classes + 3
        self.d_paired = build(hp.discriminator, MultiScaleDiscriminator, "discriminator", in_ch=d_in)
        self.d_transfer = build(hp.discriminator, MultiScaleDiscriminator, "discriminator", in_ch=d_in)

        self.adversarial = AdversarialLoss(self.losses.gan_mode)
        self.perceptual = None
        if self.losses.vgg > 0:
            layers = self.losses.vgg_layers or PIX2PIXHD_VGG
            self.perceptual = MaskedPerceptualLoss(build_vgg(allow_random, tuple(layers), self.losses.vgg_variant),
                                                   layers)
        # the parser (when configured) serves the parsing loss and the mask-consistency metric
        self.parser_training: dict = {}
        self.parsing_loss = self._build_parsing_loss()

        self.generator_ema = make_ema(self.generator) if make_ema is not None else None
        # which generator validation found better: {"weights": "ema"|"raw", "metric": ..., "raw": x, "ema": y}
        self.selection: dict = {}
        self.val_metrics = None  # built in setup() (needs the device and optional weights)
        self._checked_batch = False

    # ---------------------------------------------------------------------------------------- helpers
    def _build_parsing_loss(self):
        from genkit.models.parsing import ParserNet, ParsingLoss, load_parser

        p, hp = self.parser_settings, self.hparams
        if p.checkpoint:
            from genkit.models.portrait.parser_checks import parser_training

            parser = load_parser(p.checkpoint, expected_schema=self.schema)
            multiple = getattr(parser, "multiple", 1)
            if hp.image_size % multiple:
                raise ConfigError(f"parser {p.checkpoint} needs image sizes divisible by {multiple}, "
                                  f"the portrait model uses {hp.image_size}")
            self.parser_training = parser_training(p.checkpoint)
        elif p.random_init:
            if not hp.allow_random:
                raise ConfigError("model.parser.random_init=true uses a RANDOM face parser (meaningless parsing loss);"
                                  " it needs weights.allow_random=true, or give model.parser.checkpoint")
            from genkit.core import weights

            weights.warn_random("face-parser", "the portrait parsing loss")
            depth = 2 if hp.image_size < 64 else 3
            parser = ParserNet(self.schema.num_classes, base_channels=8, depth=depth)
            parser.class_weights = None
        else:
            log.warning("portrait: no parser checkpoint (model.parser.checkpoint=null): parsing loss and mask "
                        "consistency disabled")
            return None
        if p.class_weights == "none":
            weights = None
        elif p.class_weights == "auto":
            weights = getattr(parser, "class_weights", None)  # None: counted on the data at the start of training
        else:
            weights = p.class_weights
        try:
            return ParsingLoss(parser, class_weights=weights, input_range="symmetric")
        except ValueError as exc:
            raise ConfigError(f"model.parser.class_weights: {exc}") from None

    @property
    def inference_generator(self) -> PortraitGenerator:
        """The generator for images and export: the one validation found better (the EMA copy until then)."""
        if self.generator_ema is None or self.selection.get("weights") == "raw":
            return self.generator
        return self.generator_ema.module

    def generators(self) -> dict[str, PortraitGenerator]:
        out = {"raw": self.generator}
        if self.generator_ema is not None:
            out["ema"] = self.generator_ema.module
        return out

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
            if batch.get("background") is not None and batch["background"].shape != image.shape:
                raise ValueError(f"background {tuple(batch['background'].shape)} and image {tuple(image.shape)} "
                                 "sizes differ")
        except ValueError as exc:
            raise ConfigError(f"portrait model input{where}: {exc}") from None
        if float(image.min()) >= 0.0 and float(image.max()) <= 1.0 and float(image.mean()) > 0.05:
            log.warning("portrait: input images look like [0, 1]; the model expects [-1, 1] "
                        "(data.value_range=symmetric)")
        self._checked_batch = True

    def _datamodule(self):
        trainer = getattr(self, "_trainer", None)
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def _check_datamodule(self) -> None:
        dm = self._datamodule()
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
        if self.parser is not None:
            from genkit.models.portrait.parser_checks import parser_warnings

            photos = hp.get("source") not in (None, "synthetic")
            for line in parser_warnings(self.parser_training, getattr(self.parser, "image_size", None),
                                        self.hparams.image_size, photos, "the parsing-loss parser"):
                log.warning("portrait: %s", line)

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
            from torchmetrics import MeanMetric

            from genkit.models.portrait.evaluation import PortraitMetrics

            hp, v = self.hparams, self.validation_settings
            fid = v.fid
            if fid == "auto":  # on when the Inception weights are installed, or random weights are allowed
                from genkit.core import weights

                # other protocols: tried, and skipped with one warning when their weights are missing
                fid = (hp.allow_random or v.fid_protocol != "torch-fidelity"
                       or weights.status("inception-fid") == "present")
            metrics = {}
            for tag in self.generators():
                metrics[tag] = PortraitMetrics(parser=self.parser, lpips=v.lpips, fid=fid, allow_random=hp.allow_random,
                                               num_classes=self.schema.num_classes, fid_protocol=v.fid_protocol)
            self.val_metrics = nn.ModuleDict(metrics)
            self.val_l1 = nn.ModuleDict({tag: MeanMetric() for tag in self.generators()})
            self.val_l1_face = nn.ModuleDict({tag: MeanMetric() for tag in self.generators()})

    def on_train_start(self) -> None:
        """Parsing-loss class weights from the training data's label frequencies when the parser has none."""
        loss = self.parsing_loss
        if loss is None or loss.class_weights is not None or self.parser_settings.class_weights != "auto":
            return
        from genkit.models.parsing.class_weights import count_classes, median_frequency_weights

        counts = count_classes(self.trainer.train_dataloader, self.schema.num_classes, max_batches=50)
        counts = self.trainer.strategy.reduce(counts.double().to(self.device), reduce_op="sum")
        loss.class_weights = median_frequency_weights(counts).to(self.device)
        log.info("portrait: parsing-loss class weights (median frequency of the training labels): %s",
                 ", ".join(f"{n}={w:.2f}" for n, w in zip(self.schema.classes, loss.class_weights.tolist())))

    # ---------------------------------------------------------------------------------- the two passes
    def swap_plan(self, batch_size: int, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A derangement of the batch and, per sample, which components to take from the other face
        (each with ``swap_probability``, at least one)."""
        names = self.generator.component_names
        shift = int(torch.randint(1, batch_size, (1,), generator=generator))
        perm = torch.roll(torch.arange(batch_size), shifts=shift)
        take = torch.rand(batch_size, len(names), generator=generator) < self.scheme.swap_probability
        none = ~take.any(1)
        forced = torch.randint(0, len(names), (batch_size,), generator=generator)
        take[none, forced[none]] = True
        dev = self.device
        return perm.to(dev), {n: take[:, i].to(dev) for i, n in enumerate(names)}

    def hide_radii(self, batch_size: int) -> torch.Tensor:
        """Per sample, how far around the face (pixels at this resolution) the photo is hidden in training."""
        s, size = self.scheme, self.hparams.image_size
        small = compositing.scaled_pixels(s.hide_small, size)
        large = compositing.scaled_pixels(s.hide_large, size)
        r = torch.rand(batch_size) * (small + 1)
        big = torch.rand(batch_size) < s.hide_large_probability
        r = torch.where(big, small + torch.rand(batch_size) * (large - small + 1), r)
        return r.floor().clamp(0, large).to(self.device)

    def remove_hair(self, image: torch.Tensor, mask: torch.Tensor, background: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Some samples (``hair_removal_probability``, with hair) with the hair gone from the mask and the true
        background in the ground truth; returns ``(target_mask, target_image)``."""
        lay = self.generator.layout
        hair = lay.region(mask, "hair")
        pick = (torch.rand(mask.shape[0], device=mask.device) < self.scheme.hair_removal_probability)
        pick &= hair.flatten(1).sum(1) > 0
        if not bool(pick.any()):
            return mask, image
        sel = pick.view(-1, 1, 1, 1)
        target_mask = torch.where(sel[:, 0] & hair[:, 0].bool(), lay.background_label, mask)
        # the blur of the rendered hair reaches a pixel or two into the background: take the true one there too
        uncovered = dilate(hair, max(1, self.hparams.image_size // 64)) * lay.background(target_mask)
        target_image = torch.where(sel & uncovered.bool(), background.to(image.dtype), image)
        return target_mask, target_image

    def component_losses(self, codes: ComponentCodes, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        if self.losses.local > 0:
            recon = self.generator.decode_components(codes)
            terms = []
            for name, rec in recon.items():
                w = codes.presence[name].to(rec.dtype).view(-1, 1, 1, 1)  # absent parts have nothing to rebuild
                diff = (rec.float() - inputs[name].float()).abs().mean(dim=(1, 2, 3), keepdim=True)
                terms.append((diff * w).sum() / w.sum().clamp_min(1.0))
            out["local"] = torch.stack(terms).mean()
        return out

    def kl_terms(self, codes: ComponentCodes) -> tuple[torch.Tensor | None, dict[str, torch.Tensor],
                                                        dict[str, torch.Tensor]]:
        """VAE only: the weighted KL, and per component the KL and the codes' second moment E[mu^2 + sigma^2]
        (detached, for the logs)."""
        if not self.generator.variational:
            return None, {}, {}
        w = self.losses
        total, kls, moments = [], {}, {}
        for name in codes.names:
            present = codes.presence[name]
            kl = kl_divergence(codes.mu[name], codes.logvar[name], present)
            moment = second_moment(codes.mu[name], codes.logvar[name], present)
            total.append(w.kl * kl)
            kls[name], moments[name] = kl.detach(), moment.detach()
        return torch.stack(total).mean(), kls, moments

    def hidden_photo(self, mask: torch.Tensor, target_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training's view of the photo: ``known`` (the background the encoder is shown: beyond a random distance
        from the face), the paste weight ``alpha`` (its band lies beyond that distance) and the pasted ``region``."""
        G = self.generator
        union = compositing.face_union([mask, target_mask], G.layout.background_label)
        radius = self.hide_radii(mask.shape[0])
        reach = int(radius.max()) + G.paste_grow + G.paste_feather + 1
        dist = compositing.chebyshev_distance(union, reach)
        known = (dist > radius.view(-1, 1, 1, 1)).float()
        alpha = compositing.feathered_alpha(dist, radius + G.paste_grow, G.paste_feather)
        holes = self.background_holes(mask, target_mask)
        if holes is not None:  # hidden from the encoder, pasted from the generator, scored against the photo
            known = known * (1.0 - holes)
            reach = G.paste_grow + G.paste_feather + 1
            hole_alpha = compositing.feathered_alpha(compositing.chebyshev_distance(holes, reach), G.paste_grow,
                                                     G.paste_feather)
            alpha = torch.maximum(alpha, hole_alpha)
        return known, alpha, (alpha > 0).float()

    def background_holes(self, mask: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor | None:
        """Free-form holes in the background of some samples (``scheme.hole_probability``), or None."""
        p = self.scheme.hole_probability
        if p <= 0:
            return None
        b, size = mask.shape[0], mask.shape[-1]
        pick = (torch.rand(b) < p).float().view(-1, 1, 1, 1).to(mask.device)
        holes = free_form_holes(b, size, device=mask.device) * pick
        background = 1.0 - compositing.face_union([mask, target_mask], self.generator.layout.background_label)
        return holes * background

    def paired_losses(self, fake: torch.Tensor, fake_out, target_image: torch.Tensor, target_mask: torch.Tensor,
                      cond: torch.Tensor, region: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstruction: feature matching against the real image, balanced L1 and VGG over the pasted region."""
        G, lay, losses = self.generator, self.generator.layout, {}
        if self.losses.fm > 0:
            with torch.no_grad():
                real_out = self.d_paired(torch.cat([cond, target_image.to(fake.dtype)], 1))
            losses["fm"] = feature_matching_loss(real_out, fake_out)
        parts = [lay.region(target_mask, n) for n in G.component_names] + [lay.background(target_mask)]
        losses["l1"] = balanced_l1(fake, target_image, parts, region)
        if self.perceptual is not None:
            losses["vgg"] = self.perceptual(fake, target_image, region)
        return losses

    def transfer_losses(self, fake: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, codes: ComponentCodes,
                        perm: torch.Tensor, take: dict[str, torch.Tensor], region: torch.Tensor
                        ) -> dict[str, torch.Tensor]:
        """Transfer: L1 and VGG where nothing was swapped, the swapped components' colours against the donor's."""
        G, lay, losses = self.generator, self.generator.layout, {}
        keep = lay.background(mask)
        present = lay.presence(mask)
        donor_present = codes.presence  # codes.index(perm) would give the donors'
        swapped_terms = []
        for name in G.component_names:
            keep = keep + lay.region(mask, name) * (~take[name]).to(keep.dtype).view(-1, 1, 1, 1)
            on = take[name] & present[name] & donor_present[name][perm]
            swapped_terms.append(appearance_loss(fake, lay.region(mask, name), image[perm],
                                                 lay.region(mask[perm], name), on))
        keep = keep.clamp(0, 1) * region
        parts = [lay.region(mask, n) for n in G.component_names] + [lay.background(mask)]
        losses["l1"] = balanced_l1(fake, image, parts, keep)
        if self.perceptual is not None:
            losses["vgg"] = self.perceptual(fake, image, keep)
        if self.losses.appearance > 0:
            losses["appearance"] = torch.stack(swapped_terms).mean()
        return losses

    def generator_pass(self, image: torch.Tensor, mask: torch.Tensor, paired: bool,
                       background: torch.Tensor | None = None) -> dict:
        """Generator losses for one batch (no optimiser work); returns losses, ``loss``, ``fake`` (pasted into its
        photo), ``real`` and ``cond`` (the ground truth and the one-hot target mask for the discriminator)."""
        G = self.generator
        lay = G.layout
        inputs, regions = lay.extract_with_regions(image, mask)
        codes = G.embedding.encode(inputs, lay.presence(mask), sample=G.variational, regions=regions)
        losses = self.component_losses(codes, inputs)
        kl, kls, moments = self.kl_terms(codes)

        target_mask, target_image = mask, image
        if paired and background is not None and self.scheme.hair_removal_probability > 0:
            target_mask, target_image = self.remove_hair(image, mask, background)
        known, alpha, region = (t.to(image.dtype) for t in self.hidden_photo(mask, target_mask))
        if paired:
            used, D = codes, self.d_paired
        else:
            perm, take = self.swap_plan(image.shape[0])
            used = codes.mix(codes.index(perm), take)
            D = self.d_transfer
        raw = G.synthesize(target_mask, used, target_image, known)
        fake = compositing.paste(raw, target_image, alpha)
        cond = one_hot(target_mask, self.schema.num_classes).to(fake.dtype)
        fake_out = D(torch.cat([cond, fake], 1))
        losses["adv"] = self.adversarial.generator(fake_out)
        if paired:
            losses.update(self.paired_losses(fake, fake_out, target_image, target_mask, cond, region))
        else:
            losses.update(self.transfer_losses(fake, image, mask, codes, perm, take, region))
        if self.parsing_loss is not None and self.losses.parsing > 0:
            losses["parsing"] = self.parsing_loss(fake, target_mask)
        total = sum(self.losses.weight(k) * v for k, v in losses.items())
        if kl is not None:
            losses["kl"] = kl
            total = total + kl
        hidden = (1.0 - known) * lay.background(target_mask)
        diagnostics = {"fill_l1": masked_l1(fake.detach(), target_image, hidden)} if float(hidden.sum()) > 0 else {}
        return {"loss": total, "losses": losses, "fake": fake, "real": target_image, "cond": cond, "paired": paired,
                "kl": kls, "kl_moment": moments, "presence": codes.presence, "diagnostics": diagnostics}

    def discriminator_pass(self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, paired: bool) -> dict:
        D = self.d_paired if paired else self.d_transfer
        real_out = D(torch.cat([cond, real.to(fake.dtype)], 1))
        fake_out = D(torch.cat([cond, fake.detach()], 1))
        loss = self.adversarial.discriminator(real_out, fake_out)
        return {"loss": loss}

    def is_paired_step(self, step: int, batch_size: int) -> bool:
        k = self.scheme.unpaired_every
        if batch_size < 2 or k == 0:
            return True
        return step % k != k - 1

    def set_discriminators_trainable(self, flag: bool) -> None:
        for p in chain(self.d_paired.parameters(), self.d_transfer.parameters()):
            p.requires_grad_(flag)

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int):
        self._check_batch(batch)
        if self.hparams.scheduler_interval == "step":
            self._sync_schedulers(self.global_step)
        image, mask = batch["image"], batch["mask"]
        opt_g, opt_d = self.optimizers()
        paired = self.is_paired_step(self.global_step, image.shape[0])

        self.set_discriminators_trainable(False)
        g = self.generator_pass(image, mask, paired, batch.get("background"))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g["loss"])
        opt_g.step()

        self.set_discriminators_trainable(True)
        d = self.discriminator_pass(g["real"], g["fake"], g["cond"], paired)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d["loss"])
        with uncounted_step(opt_d):
            opt_d.step()

        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

        kind = "paired" if paired else "unpaired"
        b = image.shape[0]
        logs = {f"train/{kind}/{k}": v.detach() for k, v in g["losses"].items()}
        logs.update({f"train/{kind}/{k}": v for k, v in g["diagnostics"].items()})
        logs.update({"train/g_loss": g["loss"].detach(), "train/d_loss": d["loss"].detach()})
        for name in g["kl"]:
            logs[f"train/kl/{name}"] = g["kl"][name]
            logs[f"train/kl_moment/{name}"] = g["kl_moment"][name]
        if self.generator_ema is not None:
            logs["train/ema_decay"] = torch.tensor(self.generator_ema.current_decay)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=b)
        self.log("train/l1", g["losses"]["l1"].detach(), prog_bar=True, on_step=True, batch_size=b)
        return g["loss"].detach()

    def on_train_epoch_start(self) -> None:
        """Bring per-epoch LR schedulers to the current epoch.

        Done at epoch *start* and idempotently (``last_epoch`` is set from ``current_epoch``), so a run that
        stopped mid-epoch - where Lightning still calls the epoch-end hooks - and was resumed from any checkpoint
        follows exactly the same schedule as an uninterrupted one.
        """
        if self.hparams.scheduler_interval == "epoch":
            self._sync_schedulers(self.current_epoch)

    def _sync_schedulers(self, position: int) -> None:
        """Set every LR scheduler to ``position`` (an epoch or an optimiser step), idempotently."""
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for s in schedulers if isinstance(schedulers, list) else [schedulers]:
            if s.last_epoch != position:
                s.last_epoch = position - 1
                s.step()

    def configure_optimizers(self):
        opt_g = self.make_optimizer_g(self.generator.parameters())
        opt_d = self.make_optimizer_d(chain(self.d_paired.parameters(), self.d_transfer.parameters()))
        interval = self.hparams.scheduler_interval
        out = []
        for opt, name in ((opt_g, "lr/G"), (opt_d, "lr/D")):  # the names LearningRateMonitor shows
            sched = lr_scheduler_config(self.make_scheduler, opt, self.trainer, interval, name)
            out.append({"optimizer": opt, **({"lr_scheduler": sched} if sched else {})})
        return tuple(out)

    # --------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def transfer_all(self, generator: PortraitGenerator, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each face rendered with all components of the next face of the batch (its own mask and photo)."""
        codes = generator.encode(image, mask)
        perm = torch.roll(torch.arange(image.shape[0], device=image.device), 1)
        return generator.render(mask, codes.index(perm), image)["image"]

    @torch.no_grad()
    def without_hair(self, generator: PortraitGenerator, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each face with its hair removed from the mask (the uncovered background is generated)."""
        bald = torch.where(mask == generator.layout.labels["hair"][0], generator.layout.background_label, mask)
        return generator.render(bald, generator.encode(image, mask), image, mask)["image"]

    def _eval_step(self, batch: dict, prefix: str) -> None:
        self._check_batch(batch)
        image, mask = batch["image"], batch["mask"]
        b = image.shape[0]
        for tag, G in self.generators().items():
            recon = G(image, mask)
            err = (recon.float() - image.float()).abs() / 2.0
            face = 1.0 - G.background_mask(mask)
            self.val_l1[tag].update(err.mean(dim=(1, 2, 3)))
            self.val_l1_face[tag].update((err * face).sum((1, 2, 3)) / (face.sum((1, 2, 3)) * 3).clamp_min(1))
            transfer = self.transfer_all(G, image, mask) if b > 1 else None
            self.val_metrics[tag].update(real=image, recon=recon, transfer=transfer, mask=mask)
        if self.generator.variational:
            codes = self.generator.encode(image, mask)
            for name in codes.names:
                m = second_moment(codes.mu[name], codes.logvar[name], codes.presence[name])
                self.log(f"{prefix}/kl_moment/{name}", m, on_epoch=True, batch_size=b, sync_dist=True)

    def _eval_epoch_end(self, prefix: str) -> None:
        if self.val_metrics is None:
            return
        scores = {}
        for tag in self.generators():
            values = {"l1": self.val_l1[tag].compute(), "l1_face": self.val_l1_face[tag].compute()}
            values.update(self.val_metrics[tag].compute())
            for k, v in values.items():
                self.log(f"{prefix}/{tag}/{k}", v.float(), sync_dist=False)  # already synced by the metrics
            scores[tag] = values
            self.val_l1[tag].reset()
            self.val_l1_face[tag].reset()
            self.val_metrics[tag].reset()
        best = min(scores, key=lambda t: float(scores[t][SELECTION_METRIC]))
        if prefix == "val" and not self.trainer.sanity_checking:
            self.selection = {"weights": best, "metric": f"val/{SELECTION_METRIC}", "step": int(self.global_step),
                              **{t: float(v[SELECTION_METRIC]) for t, v in scores.items()}}
        for k, v in scores[best].items():
            self.log(f"{prefix}/{k}", v.float(), prog_bar=k == "l1" and prefix == "val")
        self.log(f"{prefix}/ema_selected", float(best == "ema"))

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
        """Rows for the image grid: mask | target | result (reconstruction) | transfer (next face's components) |
        hair removed (background filled)."""
        image = batch["image"].to(self.device)
        mask = batch["mask"].to(self.device)
        G = self.inference_generator
        rows = [("mask", self.schema.colorize_batch(mask)), ("target", to_unit(image)), ("result", to_unit(G(image, mask)))]
        if image.shape[0] > 1:
            rows.append(("transfer", to_unit(self.transfer_all(G, image, mask))))
        rows.append(("no hair", to_unit(self.without_hair(G, image, mask))))
        return [(name, t.float().clamp(0, 1)) for name, t in rows]

    # ------------------------------------------------------------------------------------- checkpoints
    def checkpoint_block(self) -> dict:
        from genkit.core import weights

        block = ckpt_io.make_block(self.generator.config(), self.generator_ema is not None,
                                   target=f"{type(self.generator).__module__}.{type(self.generator).__qualname__}")
        dm = self._datamodule()
        data = dm.provenance() if hasattr(dm, "provenance") else {"data_source": None, "synthetic_data": False}
        block["training"] = {"weights": weights.provenance(), "random_weights": weights.used_random_weights(),
                             "data_source": data.get("data_source"), "synthetic_data": bool(data.get("synthetic_data"))}
        if self.selection:
            block["selection"] = dict(self.selection)
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
            raise CheckpointError(f"checkpoint was trained with ema={block.get('ema')} but model.ema is "
                                  f"{'set' if self.generator_ema is not None else 'null'}; set model.ema accordingly "
                                  "to resume")
        self.selection = dict(block.get("selection", {}))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # frozen helpers are not in checkpoints: keep the ones this module was built with
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(FROZEN_PREFIXES)}
        for k, v in super().state_dict().items():
            if k.startswith(FROZEN_PREFIXES):
                state_dict[k] = v
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def export(self, path, weights: str = "auto"):
        """Write one generator as a small file for the editor: ``auto`` (the one validation found better), ``ema``
        or ``raw``."""
        if weights not in ("auto", "ema", "raw"):
            raise ConfigError(f"weights must be auto, ema or raw, got {weights!r}")
        if weights == "ema" and self.generator_ema is None:
            raise ConfigError("this model keeps no EMA generator (model.ema is null)")
        gen = {"auto": self.inference_generator, "ema": self.generator_ema.module if self.generator_ema else None,
               "raw": self.generator}[weights]
        used = "ema" if (self.generator_ema is not None and gen is self.generator_ema.module) else "raw"
        return ckpt_io.export_generator(gen, path, ema=used == "ema", training=self.checkpoint_block()["training"],
                                        selection=self.selection)


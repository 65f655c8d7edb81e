"""Losses of the portrait cGAN. Each one is small and numerically sound; weights live in the module's config.

* :class:`AdversarialLoss` works on *logits*: ``bce`` (non-saturating, ``BCEWithLogits``), ``hinge`` or ``lsgan``.
  (The authors' released discriminator applied a sigmoid twice; nothing here takes a sigmoid of a probability.)
* :func:`feature_matching_loss`: L1 between the discriminator's intermediate features on real and fake.
* :class:`MaskedPerceptualLoss`: VGG-19 feature L1 inside a region mask, on the shared
  :class:`~genkit.nn.vgg.VGG19Encoder`.
* :func:`masked_l1`, :func:`balanced_l1` (every component counts equally), :func:`kl_divergence`,
  :func:`second_moment`; the parsing loss is
  :class:`genkit.models.parsing.ParsingLoss`.
* :func:`appearance_loss`: a transferred component must take the donor's colour statistics (mean and standard
  deviation of RGB inside the component), so transfer steps teach the generator to *use* the donor's code.

:class:`LossWeights` (``model.losses``) holds the weights and the KL calibration. All reductions happen in float32
(safe under mixed precision).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.transforms import to_unit
from genkit.nn.vgg import VGG19Encoder

GAN_MODES = ("bce", "hinge", "lsgan")
PIX2PIXHD_VGG = {"relu1_1": 1 / 32, "relu2_1": 1 / 16, "relu3_1": 1 / 8, "relu4_1": 1 / 4, "relu5_1": 1.0}


@dataclass
class LossWeights:
    """``model.losses``: the adversarial mode, the weight of each generator loss and the KL calibration.

    ``kl`` (VAE embeddings only) weighs the KL divergence per latent dimension. The encoders scale each code's
    mean so that its second moment E[mu^2 + sigma^2] is the prior's 1 (:func:`~genkit.models.portrait.encoders.
    prior_scaled`); the KL term then only decides how much of that unit budget is noise (``sigma``) rather than
    information (``mu``).
    """

    gan_mode: str = "bce"
    adv: float = 1.0
    fm: float = 10.0
    vgg: float = 10.0
    l1: float = 10.0
    local: float = 10.0
    appearance: float = 10.0
    parsing: float = 1.0
    kl: float = 0.01
    vgg_layers: dict | None = None
    vgg_variant: str = "torchvision"  # the perceptual loss's VGG-19: torchvision's or the Caffe one (genkit.nn.vgg)

    def __post_init__(self):
        from genkit.nn.vgg import get_variant

        get_variant(self.vgg_variant)  # an unknown variant is an error naming the choices
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        for name in ("adv", "fm", "vgg", "l1", "local", "appearance", "parsing", "kl"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.vgg_layers is not None:
            self.vgg_layers = {str(k): float(v) for k, v in dict(self.vgg_layers).items()}

    def weight(self, name: str) -> float:
        return float(getattr(self, name))


def _logits(outputs) -> list[torch.Tensor]:
    """The logit maps of a (multi-scale) discriminator output: a tensor, a list of tensors or of feature lists."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [o[-1] if isinstance(o, (list, tuple)) else o for o in outputs]


class AdversarialLoss(nn.Module):
    def __init__(self, mode: str = "bce"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"gan mode must be one of {GAN_MODES}, got {mode!r}")
        self.mode = mode

    def discriminator(self, real, fake) -> torch.Tensor:
        """D loss, averaged over scales."""
        losses = []
        for r, f in zip(_logits(real), _logits(fake)):
            r, f = r.float(), f.float()
            if self.mode == "bce":
                losses.append(F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                              + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))
            elif self.mode == "hinge":
                losses.append(F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean())
            else:
                losses.append(((r - 1.0) ** 2).mean() + (f ** 2).mean())
        return 0.5 * torch.stack(losses).mean()

    def generator(self, fake) -> torch.Tensor:
        """G loss (non-saturating for bce), averaged over scales."""
        losses = []
        for f in _logits(fake):
            f = f.float()
            if self.mode == "bce":
                losses.append(F.binary_cross_entropy_with_logits(f, torch.ones_like(f)))
            elif self.mode == "hinge":
                losses.append(-f.mean())
            else:
                losses.append(((f - 1.0) ** 2).mean())
        return torch.stack(losses).mean()


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between the intermediate discriminator features (logit layers excluded), averaged over layers and scales."""
    terms = []
    for r_scale, f_scale in zip(real, fake):
        for r, f in zip(r_scale[:-1], f_scale[:-1]):
            terms.append(F.l1_loss(f.float(), r.detach().float()))
    return torch.stack(terms).mean()


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Mean absolute error over the pixels where ``mask`` (B, 1, H, W) is on; 0 if the mask is empty."""
    diff = (fake.float() - real.float()).abs()
    if mask is None:
        return diff.mean()
    m = mask.float().expand_as(diff)
    return (diff * m).sum() / (m.sum() + eps)


def balanced_l1(fake: torch.Tensor, real: torch.Tensor, parts: list[torch.Tensor], where: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Mean over ``parts`` (each (B, 1, H, W), e.g. the face components and the background) of the mean absolute
    error inside that part (and ``where``): a 40-pixel mouth counts as much as a 2000-pixel skin, as class weights
    do for the parsing loss. Parts with no pixels are left out."""
    diff = (fake.float() - real.float()).abs().mean(1, keepdim=True)
    terms = []
    for part in parts:
        m = part.float() if where is None else part.float() * where.float()
        n = m.sum()
        if float(n) > 0:
            terms.append((diff * m).sum() / n)
    return torch.stack(terms).mean() if terms else diff.sum() * 0.0


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per latent dimension (so its weight does not depend on the latent size),
    averaged over the batch, or over the samples where ``weight`` (B,) is on."""
    mu, logvar = mu.float(), logvar.float()
    kl = (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean(1)
    if weight is None:
        return kl.mean()
    w = weight.float()
    return (kl * w).sum() / w.sum().clamp_min(1.0)


def second_moment(mu: torch.Tensor, logvar: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``E[mu^2 + sigma^2]`` per latent dimension: the second moment of the codes a VAE encoder hands the decoder.
    The N(0, I) prior has 1; far above 1, prior samples are codes the decoder never saw."""
    m = (mu.float().pow(2) + logvar.float().exp()).mean(1)
    if weight is None:
        return m.mean()
    w = weight.float()
    return (m * w).sum() / w.sum().clamp_min(1.0)


def colour_stats(image: torch.Tensor, region: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, 6): per-channel mean and standard deviation of ``image`` (B, 3, H, W) inside ``region`` (B, 1, H, W)."""
    x = image.float()
    w = region.float()
    n = w.flatten(1).sum(1).clamp_min(eps).view(-1, 1)
    mean = (x * w).flatten(2).sum(2) / n
    var = ((x - mean.view(*mean.shape, 1, 1)).pow(2) * w).flatten(2).sum(2) / n
    return torch.cat([mean, (var + eps).sqrt()], 1)


def interior(region: torch.Tensor, edge: float = 0.2) -> torch.Tensor:
    """Pixel weights inside a (B, 1, H, W) region: 1 where the 3x3 neighbourhood is inside, ``edge`` on the border
    (where a small part's colour is mixed with its surroundings)."""
    inner = -F.max_pool2d(-region.float(), 3, stride=1, padding=1)
    return region.float() * (edge + (1.0 - edge) * inner)


def appearance_loss(fake: torch.Tensor, fake_region: torch.Tensor, donor: torch.Tensor, donor_region: torch.Tensor,
                    weight: torch.Tensor) -> torch.Tensor:
    """L1 between the colour statistics of a transferred component in ``fake`` and the donor's own (both weighted
    toward the component's interior, so the colours around a thin part do not count), averaged over the samples
    where ``weight`` (B,) is on (0 when none)."""
    diff = (colour_stats(fake, interior(fake_region)) - colour_stats(donor, interior(donor_region)).detach())
    diff = diff.abs().mean(1)
    w = weight.float()
    return (diff * w).sum() / w.sum().clamp_min(1.0)


class MaskedPerceptualLoss(nn.Module):
    """Weighted L1 between VGG-19 features of fake and real, restricted to a region.

    Images arrive in [-1, 1]; the region mask is area-resized to each tap's grid. The real image's features
    are computed without gradients.
    """

    def __init__(self, vgg: VGG19Encoder, layer_weights: dict[str, float] | None = None):
        super().__init__()
        self.layer_weights = dict(layer_weights or PIX2PIXHD_VGG)
        missing = set(self.layer_weights) - set(vgg.taps)
        if missing:
            raise ValueError(f"VGG encoder lacks taps {sorted(missing)}")
        self.vgg = vgg

    def forward(self, fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor | None = None,
                eps: float = 1e-6) -> torch.Tensor:
        taps = tuple(self.layer_weights)
        f_fake = self.vgg(to_unit(fake), taps)
        with torch.no_grad():
            f_real = self.vgg(to_unit(real), taps)
        total = fake.new_zeros((), dtype=torch.float32)
        for tap, w in self.layer_weights.items():
            a, b = f_fake[tap].float(), f_real[tap].float()
            diff = (a - b).abs()
            if mask is None:
                total = total + w * diff.mean()
            else:
                m = F.interpolate(mask.float(), size=diff.shape[-2:], mode="area")
                total = total + w * (diff * m).sum() / (m.sum() * diff.shape[1] + eps)
        return total


def build_vgg(allow_random: bool, taps: Sequence[str] = tuple(PIX2PIXHD_VGG), variant: str = "torchvision",
              ) -> VGG19Encoder:
    return VGG19Encoder(taps=tuple(taps), allow_random=allow_random, variant=variant)

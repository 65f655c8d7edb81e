"""Losses of the portrait cGAN. Each one is small and numerically sound; weights live in the module's config.

* :class:`AdversarialLoss` works on *logits*: ``bce`` (non-saturating, ``BCEWithLogits``), ``hinge`` or ``lsgan``.
  (The authors' released discriminator applied a sigmoid twice; nothing here takes a sigmoid of a probability.)
* :func:`feature_matching_loss`: L1 between the discriminator's intermediate features on real and fake.
* :class:`MaskedPerceptualLoss`: VGG-19 feature L1 inside a region mask, on the shared
  :class:`~genkit.nn.vgg.VGG19Encoder`.
* :func:`masked_l1`, :func:`kl_divergence`; the parsing loss is :class:`genkit.models.parsing.ParsingLoss`.

All reductions happen in float32 (safe under mixed precision).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.transforms import to_unit
from genkit.nn.vgg import VGG19Encoder

GAN_MODES = ("bce", "hinge", "lsgan")
PIX2PIXHD_VGG = {"relu1_1": 1 / 32, "relu2_1": 1 / 16, "relu3_1": 1 / 8, "relu4_1": 1 / 4, "relu5_1": 1.0}


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


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), summed over latent dims, averaged over the batch, divided by the dim count
    (so its weight does not depend on the latent size)."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean()


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

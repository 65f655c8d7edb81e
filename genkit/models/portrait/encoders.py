"""Local embedding sub-network: one encoder, image decoder and feature decoder per face component.

Encoder: a 3x3 stem then ``n_down`` stride-2 convs down to a small grid, a 1x1 channel bottleneck, flattened
into a latent vector (512-d by default). ``variational=True`` adds a log-variance head: codes are sampled with the reparameterisation trick
in training and a KL term is optimised (so components can be drawn from the N(0, I) prior), and the mean is scaled
so each code's second moment E[mu^2 + sigma^2] is the prior's 1 (:func:`prior_scaled`); otherwise the encoder is a
plain autoencoder (the paper's description) whose codes are scaled to the same unit second moment.

With region pooling the encoder also averages its input colours and first-layer features over each class of the
component (the lips and the inner mouth separately, as SEAN's region-wise average pooling): the code then carries
the component's appearance directly instead of having to discover it through a stack of strided convolutions,
which is what makes transfers work after a short training.

Decoders mirror the encoder from the latent: the *image* decoder back to the input crop (for the local
reconstruction loss), the *feature* decoder to a ``feature_channels`` map at a quarter of the input size (crop
sized for eyes/mouth, the full mask-feature grid for skin/hair).

Norms are skipped on grids smaller than 4x4 (instance norm over 1-6 positions is degenerate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from genkit.models.portrait.components import FEATURE_STRIDE, ComponentLayout
from genkit.nn.blocks import ConvBlock, UpBlock, channel_plan

LOGVAR_RANGE = (-30.0, 0.0)  # sigma <= 1: no code is noisier than the prior
LOGVAR_INIT = -4.0


def downsampling_steps(size: tuple[int, int], min_side: int = 4, max_steps: int = 6) -> int:
    """How many stride-2 steps take ``size`` to a small grid (at least down to a quarter, the feature grid)."""
    h, w = size
    steps = 0
    while (steps < max_steps and h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= min_side) or steps < 2:
        if h % 2 or w % 2:
            raise ValueError(f"component size {size} cannot be halved twice")
        h, w, steps = h // 2, w // 2, steps + 1
    return steps


def prior_scaled(mu: torch.Tensor, logvar: torch.Tensor | None, eps: float = 1e-12) -> torch.Tensor:
    """``mu`` rescaled per code so that ``mean(mu^2) + mean(sigma^2) = 1`` (``mean(mu^2) = 1`` for an autoencoder,
    ``logvar`` None): the codes' second moment is the N(0, I) prior's by construction, so a prior sample has the
    scale of the codes the decoder was trained on.

    A KL weight alone does not place that moment (0.01 per dimension left it at 2.4-3.3, 1.0 collapsed the codes)
    and a penalty on it fought the reconstruction; the KL term now only trades information against noise: it
    raises ``sigma``, which leaves less of the unit budget to ``mu``."""
    budget = 1.0 if logvar is None else (1.0 - logvar.float().exp().mean(1, keepdim=True)).clamp_min(0.0)
    rms = mu.float().pow(2).mean(1, keepdim=True).clamp_min(eps).sqrt()
    return (mu.float() * budget ** 0.5 / rms).to(mu.dtype)


def _norm_for(hw: tuple[int, int], norm: str) -> str:
    return norm if hw[0] * hw[1] >= 16 else "none"


class ComponentEncoder(nn.Module):
    """Crop (or masked image) -> latent code; ``(mu, logvar)`` with ``logvar`` None for a plain autoencoder.

    A 1x1 bottleneck (``bottleneck_channels``) before flattening keeps the fully connected layer small: at 256 px
    the mouth grid is 5x9; flattening 256 channels there would cost 5.9 M weights per layer, 64 channels 1.5 M.
    """

    def __init__(self, in_size: tuple[int, int], latent_dim: int = 512, base_channels: int = 32,
                 max_channels: int = 256, variational: bool = False, norm: str = "instance", in_channels: int = 3,
                 bottleneck_channels: int = 64, pooled_parts: int = 0):
        super().__init__()
        self.in_size = tuple(in_size)
        self.n_down = downsampling_steps(self.in_size)
        chans = channel_plan(base_channels, self.n_down, max_channels)
        layers = [ConvBlock(in_channels, chans[0], 3, norm=_norm_for(self.in_size, norm), act="lrelu")]
        h, w = self.in_size
        for i in range(self.n_down):
            h, w = h // 2, w // 2
            layers.append(ConvBlock(chans[i], chans[i + 1], 3, stride=2, norm=_norm_for((h, w), norm), act="lrelu"))
        neck = min(bottleneck_channels, chans[-1])
        layers.append(ConvBlock(chans[-1], neck, 1, norm="none", act="lrelu"))
        self.body = nn.Sequential(*layers)
        self.grid = (chans[-1], h, w)  # channels and size of the last conv grid (decoders start from it)
        self.bottom = (neck, h, w)
        flat = neck * h * w
        self.pooled_parts = int(pooled_parts)
        # per pooled part: mean and spread of the input colours, mean of the stem features
        flat += self.pooled_parts * (2 * in_channels + chans[0])
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim) if variational else None
        if self.logvar is not None:  # start nearly deterministic (sigma ~ 0.14): early noise would swamp the decoder
            nn.init.constant_(self.logvar.bias, LOGVAR_INIT)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor, region: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``region`` (B, K, h, w): the pixels of each of the component's K classes in ``x`` (needed when
        ``pooled_parts`` = K > 0)."""
        if tuple(x.shape[-2:]) != self.in_size:
            raise ValueError(f"component encoder expects {self.in_size} inputs, got {tuple(x.shape[-2:])}")
        stem = self.body[0](x)
        h = self.body[1:](stem).flatten(1)
        if self.pooled_parts:
            if region is None or region.shape[1] != self.pooled_parts:
                raise ValueError(f"a region-pooling encoder needs the {self.pooled_parts} class regions of its input")
            w = region.to(x.dtype).unsqueeze(2)  # (B, K, 1, h, w)
            n = w.flatten(2).sum(2).clamp_min(1.0)  # (B, K)
            mean = (x.unsqueeze(1) * w).flatten(3).sum(3) / n[..., None]  # (B, K, C)
            spread = ((x.unsqueeze(1) - mean[..., None, None]).abs() * w).flatten(3).sum(3) / n[..., None]
            feats = (stem.unsqueeze(1) * w).flatten(3).sum(3) / n[..., None]
            h = torch.cat([h, mean.flatten(1), spread.flatten(1), feats.flatten(1)], 1)
        mu = self.mu(h)
        if self.logvar is None:  # an autoencoder's codes get the same unit scale (better conditioned, comparable)
            return prior_scaled(mu, None), None
        logvar = self.logvar(h).clamp(*LOGVAR_RANGE)
        return prior_scaled(mu, logvar), logvar


class LatentDecoder(nn.Module):
    """latent -> (bottleneck, h, w) -> 1x1 conv to ``grid_channels`` -> ``n_up`` upsampling blocks -> output conv."""

    def __init__(self, latent_dim: int, bottom: tuple[int, int, int], grid_channels: int, n_up: int,
                 out_channels: int, base_channels: int, max_channels: int, norm: str, out_act: str):
        super().__init__()
        c, h, w = bottom
        self.bottom = bottom
        self.fc = nn.Linear(latent_dim, c * h * w)
        self.expand = ConvBlock(c, grid_channels, 1, norm="none", act="lrelu")
        chans = list(reversed(channel_plan(base_channels, n_up, max_channels)))
        chans[0] = grid_channels
        ups = []
        for i in range(n_up):
            h, w = h * 2, w * 2
            ups.append(UpBlock(chans[i], chans[i + 1], norm=_norm_for((h, w), norm), act="lrelu"))
        self.ups = nn.Sequential(*ups)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.out = nn.Conv2d(chans[-1], out_channels, 3, padding=1)
        self.out_act = nn.Tanh() if out_act == "tanh" else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(z).view(z.shape[0], *self.bottom))
        return self.out_act(self.out(self.ups(self.expand(h))))


class ComponentAutoencoder(nn.Module):
    """Encoder + image decoder + feature decoder of one component."""

    def __init__(self, in_size: tuple[int, int], latent_dim: int = 512, feature_channels: int = 256,
                 base_channels: int = 32, max_channels: int = 256, variational: bool = False,
                 norm: str = "instance", bottleneck_channels: int = 64, pooled_parts: int = 0):
        super().__init__()
        self.encoder = ComponentEncoder(in_size, latent_dim, base_channels, max_channels, variational, norm,
                                        bottleneck_channels=bottleneck_channels, pooled_parts=pooled_parts)
        n = self.encoder.n_down
        grid = self.encoder.grid[0]
        self.image_decoder = LatentDecoder(latent_dim, self.encoder.bottom, grid, n, 3, base_channels,
                                           max_channels, norm, "tanh")
        self.feature_decoder = LatentDecoder(latent_dim, self.encoder.bottom, grid, n - 2, feature_channels,
                                             base_channels * 2 ** 2, max_channels, norm, "none")
        self.feature_size = (in_size[0] // FEATURE_STRIDE, in_size[1] // FEATURE_STRIDE)


@dataclass
class ComponentCodes:
    """Latent codes of a batch: ``z`` (used), ``mu``/``logvar`` (from the encoder; logvar None for autoencoders),
    ``presence`` (B,) bool per component in the *source* mask (absent components have zero codes)."""

    z: dict[str, torch.Tensor]
    mu: dict[str, torch.Tensor] = field(default_factory=dict)
    logvar: dict[str, torch.Tensor | None] = field(default_factory=dict)
    presence: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.z)

    @property
    def batch_size(self) -> int:
        return next(iter(self.z.values())).shape[0]

    def index(self, idx: torch.Tensor | list[int]) -> "ComponentCodes":
        """The codes of samples ``idx`` (e.g. a permutation of the batch)."""
        pick = lambda d: {k: (None if v is None else v[idx]) for k, v in d.items()}  # noqa: E731
        return ComponentCodes(pick(self.z), pick(self.mu), pick(self.logvar), pick(self.presence))

    def mix(self, other: "ComponentCodes", take: dict[str, torch.Tensor | bool]) -> "ComponentCodes":
        """Per component (and per sample, for a (B,) bool tensor) take ``other``'s code instead of ours."""
        out = ComponentCodes(dict(self.z), dict(self.mu), dict(self.logvar), dict(self.presence))
        for name, sel in take.items():
            if name not in self.z:
                raise KeyError(f"unknown component {name!r}; components: {list(self.z)}")
            if isinstance(sel, bool):
                sel = torch.full((self.batch_size,), sel, dtype=torch.bool, device=self.z[name].device)
            s = sel.view(-1, 1)
            out.z[name] = torch.where(s, other.z[name], self.z[name])
            if name in self.mu and name in other.mu:
                out.mu[name] = torch.where(s, other.mu[name], self.mu[name])
            if self.logvar.get(name) is not None and other.logvar.get(name) is not None:
                out.logvar[name] = torch.where(s, other.logvar[name], self.logvar[name])
            if name in self.presence and name in other.presence:
                out.presence[name] = torch.where(sel, other.presence[name], self.presence[name])
        return out

    def detach(self) -> "ComponentCodes":
        d = lambda m: {k: (None if v is None else v.detach()) for k, v in m.items()}  # noqa: E731
        return ComponentCodes(d(self.z), d(self.mu), d(self.logvar), d(self.presence))


class LocalEmbedding(nn.Module):
    """The five component autoencoders, driven by a :class:`ComponentLayout`."""

    def __init__(self, layout: ComponentLayout, latent_dim: int = 512, feature_channels: int = 256,
                 base_channels: int = 32, max_channels: int = 256, variational: bool = False,
                 norm: str = "instance", bottleneck_channels: int = 64, region_pooling: bool = False):
        super().__init__()
        self.layout = layout
        self.variational = variational
        self.latent_dim = latent_dim
        self.feature_channels = feature_channels
        self.parts = nn.ModuleDict({
            name: ComponentAutoencoder(layout.input_size(name), latent_dim, feature_channels, base_channels,
                                       max_channels, variational, norm, bottleneck_channels,
                                       len(layout.labels[name]) if region_pooling else 0)
            for name in layout.names
        })

    def encode(self, inputs: dict[str, torch.Tensor], presence: dict[str, torch.Tensor],
               sample: bool = False, regions: dict[str, torch.Tensor] | None = None) -> ComponentCodes:
        """Encode the component inputs (``regions``: each input's own pixels, for region pooling); ``sample``
        draws z ~ N(mu, sigma) (VAE training), else z = mu."""
        codes = ComponentCodes({}, {}, {}, dict(presence))
        for name, part in self.parts.items():
            mu, logvar = part.encoder(inputs[name], None if regions is None else regions[name])
            z = mu
            if sample and logvar is not None:
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            keep = presence[name].to(z.dtype).view(-1, 1)
            codes.z[name] = z * keep  # absent component -> zero code
            codes.mu[name] = mu
            codes.logvar[name] = logvar
        return codes

    def decode_images(self, codes: ComponentCodes) -> dict[str, torch.Tensor]:
        return {name: self.parts[name].image_decoder(codes.z[name]) for name in self.parts}

    def decode_features(self, codes: ComponentCodes) -> dict[str, torch.Tensor]:
        return {name: self.parts[name].feature_decoder(codes.z[name]) for name in self.parts}

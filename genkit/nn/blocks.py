"""Shared convolutional building blocks: norms, conv blocks, residual blocks, upsampling, PatchGAN discriminators.

Conventions: every block takes plain ints/strings so configs can size networks from tiny (tests) to full
(pix2pixHD-like, 256 px). Norms are picked by name: ``instance`` (no running statistics, the pix2pixHD choice
for generators and discriminators), ``batch``, ``group`` or ``none``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

NORMS = ("instance", "batch", "group", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def make_act(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}; choose relu, lrelu or none")


class ConvBlock(nn.Sequential):
    """Conv (reflection padding for odd kernels at stride 1, zero padding otherwise) + norm + activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, norm: str = "instance",
                 act: str = "relu", spectral: bool = False):
        pad = (kernel - 1) // 2
        reflect = stride == 1 and kernel > 1 and kernel % 2 == 1
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad,
                         padding_mode="reflect" if reflect else "zeros", bias=norm in ("none", "instance"))
        if spectral:
            conv = nn.utils.parametrizations.spectral_norm(conv)
        super().__init__(conv, make_norm(norm, out_ch), make_act(act))


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip connection (pix2pixHD's residual block)."""

    def __init__(self, channels: int, norm: str = "instance", act: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels, 3, norm=norm, act=act),
                                  ConvBlock(channels, channels, 3, norm=norm, act="none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpBlock(nn.Sequential):
    """Nearest x2 upsampling then a 3x3 conv block (no transposed conv: no checkerboard artefacts)."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "instance", act: str = "relu"):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(in_ch, out_ch, 3, norm=norm, act=act))


class PatchDiscriminator(nn.Module):
    """pix2pixHD's N-layer PatchGAN: 4x4 convs, ``n_layers`` stride-2 steps, one logit per patch.

    ``forward`` returns the list of every layer's output (the last one is the logit map), for feature matching.
    """

    def __init__(self, in_ch: int, base_channels: int = 64, n_layers: int = 3, max_channels: int = 512,
                 norm: str = "instance", spectral: bool = False):
        super().__init__()

        def conv(i, o, stride):
            c = nn.Conv2d(i, o, 4, stride=stride, padding=2)
            return nn.utils.parametrizations.spectral_norm(c) if spectral else c

        layers = [nn.Sequential(conv(in_ch, base_channels, 2), nn.LeakyReLU(0.2, True))]
        ch = base_channels
        for i in range(1, n_layers + 1):
            out = min(ch * 2, max_channels)
            stride = 2 if i < n_layers else 1
            layers.append(nn.Sequential(conv(ch, out, stride), make_norm(norm, out), nn.LeakyReLU(0.2, True)))
            ch = out
        layers.append(nn.Sequential(conv(ch, 1, 1)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on the input downsampled by 1, 2, 4, ... (pix2pixHD).

    Returns one feature list per scale (finest first); ``[-1]`` of each list is that scale's logit map.
    """

    def __init__(self, in_ch: int, num_scales: int = 2, base_channels: int = 64, n_layers: int = 3,
                 max_channels: int = 512, norm: str = "instance", spectral: bool = False):
        super().__init__()
        if num_scales < 1:
            raise ValueError("num_scales must be >= 1")
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_ch, base_channels, n_layers, max_channels, norm, spectral) for _ in range(num_scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


def channel_plan(base: int, steps: int, max_channels: int) -> list[int]:
    """``[base, 2 base, 4 base, ...]`` (``steps + 1`` entries) capped at ``max_channels``."""
    return [min(base * 2 ** i, max_channels) for i in range(steps + 1)]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__: Sequence[str] = ("make_norm", "make_act", "ConvBlock", "ResBlock", "UpBlock", "PatchDiscriminator",
                          "MultiScaleDiscriminator", "channel_plan", "count_parameters", "NORMS")

"""VGG-mirror decoders: invert the VGG-19 trunk from one tap back to the image (or to a shallower tap).

The decoder walks the VGG-19 layers between the two points in reverse: every 3x3 convolution ``in -> out``
becomes a 3x3 convolution ``out -> in`` followed by a ReLU, every max-pool becomes a nearest 2x upsampling.
Decoding to an image ends with a plain convolution to 3 channels (no ReLU); decoding to a tap ends with a ReLU,
since VGG activations are non-negative. From relu4_1 to the image this is the AdaIN/WCT decoder. ``width``
scales the inner channel counts (tests and quick runs use thin decoders; 1.0 is the usual size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genkit.nn.layout import conv_layout, standard_layout
from genkit.nn.vgg import VGG19_CHANNELS, VGG19_RELU_INDEX, VGG19_STRIDE

# torchvision's VGG-19 ("E") configuration: channel counts, "M" = 2x2 max-pool
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


@dataclass(frozen=True)
class VGGOp:
    kind: str  # "conv" or "pool"
    name: str  # "1_1" .. "5_4" for convolutions, "pool1" .. for pools
    in_channels: int = 0
    out_channels: int = 0


def vgg19_ops() -> list[VGGOp]:
    """The VGG-19 feature trunk as a list of convolution / pool operations (ReLUs implied after convs)."""
    ops, in_ch, block, idx = [], 3, 1, 1
    for v in VGG19_CFG:
        if v == "M":
            ops.append(VGGOp("pool", f"pool{block}"))
            block, idx = block + 1, 1
        else:
            ops.append(VGGOp("conv", f"{block}_{idx}", in_ch, int(v)))
            in_ch, idx = int(v), idx + 1
    return ops


def _conv_position(ops: list[VGGOp], tap: str) -> int:
    if tap not in VGG19_RELU_INDEX:
        raise ValueError(f"unknown VGG-19 tap {tap!r}; known: {list(VGG19_RELU_INDEX)}")
    name = tap[len("relu"):]
    return next(i for i, op in enumerate(ops) if op.kind == "conv" and op.name == name)


def mirror_ops(from_tap: str, to_tap: str | None = None) -> list[VGGOp]:
    """The VGG operations a decoder from ``from_tap`` to ``to_tap`` (None: the image) must undo, deepest first."""
    ops = vgg19_ops()
    end = _conv_position(ops, from_tap)
    start = 0 if to_tap is None else _conv_position(ops, to_tap) + 1
    if start > end:
        raise ValueError(f"cannot decode from {from_tap} to {to_tap}: {to_tap} is not shallower")
    return list(reversed(ops[start:end + 1]))


class ConvReLU(nn.Sequential):
    """Reflection-padded 3x3 convolution, optionally followed by a ReLU."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


class VGGMirrorDecoder(nn.Module):
    """Decoder inverting VGG-19 from ``from_tap`` to the RGB image (``to_tap=None``) or to ``to_tap``.

    Input: ``(B, VGG19_CHANNELS[from_tap], h, w)``; output: ``(B, 3, h*s, w*s)`` (unclamped; the RGB range the
    encoder expects is [0, 1]) or the activation shape of ``to_tap``.
    """

    def __init__(self, from_tap: str, to_tap: str | None = None, width: float = 1.0):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.from_tap, self.to_tap, self.width = from_tap, to_tap, float(width)
        ops = mirror_ops(from_tap, to_tap)
        convs = [i for i, op in enumerate(ops) if op.kind == "conv"]
        out_channels_final = 3 if to_tap is None else VGG19_CHANNELS[to_tap]

        def inner(c: int) -> int:
            return max(4, int(round(c * width)))

        layers: list[nn.Module] = []
        ch = VGG19_CHANNELS[from_tap]
        for i, op in enumerate(ops):
            if op.kind == "pool":
                layers.append(Upsample2x())
                continue
            last = i == convs[-1]
            out = out_channels_final if last else inner(op.in_channels)
            layers.append(ConvReLU(ch, out, relu=not (last and to_tap is None)))
            ch = out
        self.layers = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        """Spatial upsampling factor of the decoder."""
        return VGG19_STRIDE[self.from_tap] // (1 if self.to_tap is None else VGG19_STRIDE[self.to_tap])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return standard_layout(self.layers(conv_layout(h)))

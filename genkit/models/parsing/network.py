"""The face-parsing network: a light U-Net (plain PyTorch, no Lightning).

Input: RGB in [0, 1], shape (B, 3, H, W) with H and W divisible by ``2**depth``.
Output: per-pixel class logits (B, num_classes, H, W).

Encoder levels double the channels (capped at ``8 * base_channels``); the decoder upsamples bilinearly,
concatenates the skip and applies a double 3x3 conv. The full-resolution level uses half the base channels
and a single conv, which keeps 256 px inference well under 0.3 s on two CPU cores.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class DownBlock(nn.Module):
    """Stride-2 conv then a 3x3 conv: halves the resolution."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_ch, out_ch, stride=2), conv_bn_relu(out_ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SkipUpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip, double 3x3 conv."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, double: bool = True):
        super().__init__()
        layers = [conv_bn_relu(in_ch + skip_ch, out_ch)]
        if double:
            layers.append(conv_bn_relu(out_ch, out_ch))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], dim=1))


class ParserNet(nn.Module):
    """Light U-Net face parser.

    Args:
        num_classes: number of labels (from the label schema).
        base_channels: channels at the first downsampled level (half of them at full resolution).
        depth: number of stride-2 levels; inputs must be divisible by ``2**depth``.
    """

    def __init__(self, num_classes: int, base_channels: int = 32, depth: int = 4):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if base_channels < 2:
            raise ValueError(f"base_channels must be >= 2, got {base_channels}")
        self.num_classes = int(num_classes)
        self.base_channels = int(base_channels)
        self.depth = int(depth)

        stem_ch = max(base_channels // 2, 1)
        chans = [stem_ch] + [min(base_channels * 2 ** i, base_channels * 8) for i in range(depth)]
        self.stem = conv_bn_relu(3, stem_ch)
        self.down = nn.ModuleList(DownBlock(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(
            SkipUpBlock(chans[i + 1], chans[i], chans[i], double=i > 0) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(stem_ch, num_classes, 1)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, std=0.01)

    @property
    def multiple(self) -> int:
        """Input height and width must be divisible by this."""
        return 2 ** self.depth

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ParserNet expects (B, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"ParserNet(depth={self.depth}) needs H and W divisible by {self.multiple}, got {h}x{w}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = (x - self.mean) / self.std
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) int64 for images in [0, 1]."""
        return self(x).argmax(dim=1)

"""Tiled convolutions for large images: the encoder and the decoders run tile by tile, so their peak memory grows
with the tile, not the image.

A tile is cut with a halo of context on every side (wider than the network's receptive field), the network runs on
the haloed crop, and only the tile's own part of each output is kept. Crops start at multiples of ``align`` (the
deepest pooling stride for the encoder), so pooling windows fall where they fall on the whole image, and at the
image border a crop ends at the border, so the padding is the same as on the whole image: the result equals the
untiled one up to float rounding (a test checks it). Images no larger than one tile run in one piece.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable

import torch

from genkit.nn.vgg import VGG19_RELU_INDEX, VGG19_STRIDE

ENCODER_HALO = 64  # px; VGG-19's receptive field reaches 37 px from a relu4_1 cell (and 77 px from relu5_1)
DECODER_HALO = 8  # input cells; the VGG-mirror decoders reach at most 3 cells


def tiled(fn: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor, scales: dict[str, Fraction],
          tile: int, halo: int, align: int = 1) -> dict[str, torch.Tensor]:
    """``fn`` applied to ``x`` (1, C, H, W) tile by tile: ``fn`` maps a crop to named outputs whose sides are the
    crop's times ``scales[name]``. ``tile``/``halo``/``align`` in input pixels (tile and halo are rounded up to
    multiples of ``align``)."""
    h, w = x.shape[-2:]
    tile = -(-max(tile, align) // align) * align
    halo = -(-halo // align) * align
    if h <= tile and w <= tile:
        return fn(x)
    outs: dict[str, torch.Tensor] = {}
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            cy, cx = max(0, y0 - halo), max(0, x0 - halo)
            part = fn(x[:, :, cy:min(h, y1 + halo), cx:min(w, x1 + halo)])
            for name, r in part.items():
                s = scales[name]
                if name not in outs:
                    outs[name] = r.new_empty(r.shape[0], r.shape[1], int(h * s), int(w * s))
                outs[name][:, :, int(y0 * s):int(y1 * s), int(x0 * s):int(x1 * s)] = \
                    r[:, :, int((y0 - cy) * s):int((y1 - cy) * s), int((x0 - cx) * s):int((x1 - cx) * s)]
            del part
    return outs


class TiledEncoder:
    """The encoder's ``forward(x, taps)`` / ``encode(x, tap)`` run in tiles of ``tile`` px (0: in one piece); every
    other attribute is the wrapped encoder's."""

    def __init__(self, encoder, tile: int):
        self.encoder, self.tile = encoder, int(tile)

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def __call__(self, x: torch.Tensor, taps=None) -> dict[str, torch.Tensor]:
        taps = list(self.encoder.taps if taps is None else taps)
        if self._fits(x):
            return self.encoder(x, taps=taps)
        align = max(VGG19_STRIDE[t] for t in taps)
        halo = ENCODER_HALO * (2 if max(VGG19_RELU_INDEX[t] for t in taps) > VGG19_RELU_INDEX["relu4_1"] else 1)
        scales = {t: Fraction(1, VGG19_STRIDE[t]) for t in taps}
        return tiled(lambda crop: self.encoder(crop, taps=taps), x, scales, self.tile, halo, align)

    def encode(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        return self.encoder.encode(x, tap) if self._fits(x) else self(x, (tap,))[tap]

    def _fits(self, x: torch.Tensor) -> bool:
        return not self.tile or max(x.shape[-2:]) <= self.tile


def tiled_decode(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile_px: int,
                 in_stride: int) -> torch.Tensor:
    """A decoder (``scale``x upsampling) run in tiles of ``tile_px`` image px, i.e. ``tile_px / in_stride`` input
    cells (0: in one piece)."""
    if not tile_px:
        return module(x)
    cells = max(1, tile_px // in_stride)
    return tiled(lambda crop: {"out": module(crop)}, x, {"out": Fraction(scale)}, cells, DECODER_HALO)["out"]

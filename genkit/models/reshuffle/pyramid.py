"""Coarse-to-fine transfer: reshuffle at each level, reconstruct an image, continue one level finer.

At the first (coarsest) level the content features are the content image's; at every finer level they are
those of the current result (the previous level's reconstruction, re-encoded), and the assignment starts
from the coarser one, upsampled, refined by local search, so no fine-level step is quadratic. A
*reconstructor* turns the level's blended target into an image: a trained decoder
(:class:`~genkit.models.reshuffle.decoders.DecoderReconstructor`) or image optimisation
(:class:`~genkit.models.reshuffle.optimize.OptimizationReconstructor`).
"""

from __future__ import annotations

from typing import Callable

import torch

from genkit.models.reshuffle.config import ReshuffleConfig
from genkit.models.reshuffle.level import reshuffle_level
from genkit.models.reshuffle.masks import grid_labels
from genkit.models.reshuffle.matching import upsample_assignment
from genkit.models.reshuffle.stats import LevelStats, now

Reconstructor = Callable[[str, torch.Tensor, torch.Tensor, dict], torch.Tensor]


def transfer(encoder: torch.nn.Module, content: torch.Tensor, style_features: dict[str, torch.Tensor],
             cfg: ReshuffleConfig, reconstruct: Reconstructor, content_mask: torch.Tensor | None = None,
             style_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[LevelStats]]:
    """Stylise one content image.

    ``content``: (1, 3, H, W) in [0, 1]; ``style_features``: the style image's activations at every level tap,
    each (1, C, h, w); masks: (H, W) and (Hs, Ws) label maps at image resolution. Returns the image
    (1, 3, H, W) and per-level statistics.
    """
    image = content
    stats: list[LevelStats] = []
    targets: dict[str, torch.Tensor] = {}
    prev = None
    generator = torch.Generator().manual_seed(cfg.seed)
    for level in cfg.levels:
        t0 = now(content)
        with torch.no_grad():
            fc = encoder.encode(image, level.tap)[0]
        t_encode = now(content) - t0
        fs = style_features[level.tap][0]
        labels_c = labels_s = None
        if content_mask is not None:
            labels_c = grid_labels(content_mask, tuple(fc.shape[1:])).to(fc.device)
            labels_s = grid_labels(style_mask, tuple(fs.shape[1:])).to(fs.device)
        init = None
        if prev is not None:
            init = upsample_assignment(prev.assign, prev.stats.content_hw, prev.stats.style_hw,
                                       tuple(fc.shape[1:]), tuple(fs.shape[1:]))
        with torch.no_grad():
            res = reshuffle_level(fc, fs, level, cfg, init_assign=init, labels_c=labels_c, labels_s=labels_s,
                                  generator=generator)
        targets[level.tap] = res.features[None]
        t0 = now(content)
        image = reconstruct(level.tap, res.features[None], image, targets)
        res.stats.seconds = {"encode": t_encode, **res.stats.seconds, "reconstruct": now(content) - t0}
        stats.append(res.stats)
        prev = res
    return image, stats

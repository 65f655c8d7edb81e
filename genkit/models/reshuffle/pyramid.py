"""Coarse-to-fine transfer: reshuffle at each level, carry the blend to the next level, decode the finest one.

At the first (coarsest) level the content features are the content image's. At every finer level they are the
previous level's blended target **carried down** by the reconstructor: a level-to-level decoder
(relu4_1 -> relu3_1 -> relu2_1, as the official release does with its decoder's intermediate activations), the
features of an optimised image, or (legacy image decoders) the re-encoded decoded image. Only the finest blend
becomes the output image. A finer level matches afresh (global search) when that search is within
``max_global_pairs``, as the release does at every level; above it, it starts from the coarser assignment,
upsampled, refined by local search, so no fine-level step is quadratic (:func:`starts_from_coarser`).

A *reconstructor* has two methods: ``next_features(tap, next_tap, blend, ctx)`` -> (1, C', h', w') content
features of ``next_tap`` (a map of its own: the level builds its blend in it, unless it is one of
``ctx["content_features"]``), and ``image(tap, blend, ctx)`` -> (1, 3, H, W) in [0, 1]. ``ctx`` holds the content
image (``"content"``, the size and starting point of image reconstruction) and the blended targets of the levels
done so far (``"targets"``; kept only for a reconstructor whose ``needs_targets`` is not False). ``carries``
(default True): whether ``next_features`` carries the blend down; a reconstructor that does not (the optimisation
path's default) gets, with ``content_share="release"``, blends at the running product of the alphas, so the
finest target keeps the release's content share either way (:meth:`ReshuffleConfig.blend_alphas`).
"""

from __future__ import annotations

from typing import Protocol

import torch

from genkit.models.reshuffle.config import ReshuffleConfig, content_shares
from genkit.models.reshuffle.level import reshuffle_level
from genkit.models.reshuffle.masks import level_labels
from genkit.models.reshuffle.matching import upsample_assignment
from genkit.models.reshuffle.stats import LevelStats, now


class Reconstructor(Protocol):
    def next_features(self, tap: str, next_tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor: ...

    def image(self, tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor: ...


def starts_from_coarser(level, cfg: ReshuffleConfig, content_hw: tuple[int, int], style_hw: tuple[int, int]) -> bool:
    """Whether a finer level starts from the coarser level's assignment (upsampled, refined by local search) rather
    than matching afresh with a global search, as the release does at every level: when its search mode is
    ``local``, or ``auto`` and the exact global search would exceed ``max_global_pairs``."""
    if level.search == "global":
        return False
    pairs = content_hw[0] * content_hw[1] * style_hw[0] * style_hw[1]
    return level.search == "local" or pairs > cfg.max_global_pairs


def transfer(encoder: torch.nn.Module, content: torch.Tensor, style_features: dict[str, torch.Tensor],
             cfg: ReshuffleConfig, reconstruct: Reconstructor, content_mask: torch.Tensor | None = None,
             style_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[LevelStats]]:
    """Stylise one content image.

    ``content``: (1, 3, H, W) in [0, 1]; ``style_features``: the style image's activations at every level tap,
    each (1, C, h, w), **consumed**: a level's entry is removed once the level is done (memory: at 2048 px the
    coarser levels' style maps are 0.4 GB; pass a copy to keep them); masks: (H, W) and (Hs, Ws) label maps at
    image resolution. Returns the image (1, 3, H, W) and per-level statistics.
    """
    stats: list[LevelStats] = []
    keep_targets = getattr(reconstruct, "needs_targets", True)
    ctx: dict = {"content": content, "targets": {}}
    prev = None  # (assignment, content grid, style grid) of the previous level
    generator = torch.Generator().manual_seed(cfg.seed)
    t0 = now(content)
    with torch.no_grad():
        if getattr(reconstruct, "needs_content_features", False):  # one pass for every level's content features
            ctx["content_features"] = encoder(content, taps=cfg.taps)
            fc = ctx["content_features"][cfg.levels[0].tap][0]
        else:
            fc = encoder.encode(content, cfg.levels[0].tap)[0]
    t_encode = now(content) - t0
    image = None
    carried = bool(getattr(reconstruct, "carries", True))
    blend_alphas = cfg.blend_alphas(carried)
    shares = content_shares([lv.alpha for lv in cfg.levels]) if carried else blend_alphas
    restored = getattr(reconstruct, "restores_detail", lambda tap: False)
    for i, level in enumerate(cfg.levels):
        fs = style_features.pop(level.tap)[0]
        labels_c = labels_s = None
        lost: list[dict] = []
        unrestricted: list[int] = []
        if content_mask is not None:
            labels_c, labels_s, lost, unrestricted = level_labels(
                content_mask, style_mask, tuple(fc.shape[1:]), tuple(fs.shape[1:]), level.tap, level.stride)
            labels_c, labels_s = labels_c.to(fc.device), labels_s.to(fs.device)
        init = start = None
        if prev is not None:
            local = starts_from_coarser(level, cfg, tuple(fc.shape[1:]), tuple(fs.shape[1:]))
            if local or cfg.warm_start == "all":
                up = upsample_assignment(prev[0], prev[1], prev[2], tuple(fc.shape[1:]), tuple(fs.shape[1:]))
                init = up if local else None
                start = up if cfg.warm_start == "all" or (local and cfg.warm_start == "local") else None
        with torch.no_grad():
            res = reshuffle_level(fc, fs, level, cfg, init_assign=init, labels_c=labels_c, labels_s=labels_s,
                                  generator=generator, blend_alpha=blend_alphas[i],
                                  overwrite_content=not _shared(fc, ctx.get("content_features", {})),
                                  start_assign=start)
        del fc, fs, init, start  # memory: only the blend and the assignment go on
        res.stats.mask_lost, res.stats.mask_unrestricted = lost, unrestricted
        res.stats.content_share, res.stats.detail_restored = shares[i], bool(restored(level.tap))
        blend, level_stats = res.features[None], res.stats
        prev = (res.assign, level_stats.content_hw, level_stats.style_hw)
        del res
        if keep_targets:
            ctx["targets"][level.tap] = blend
        t0 = now(content)
        if i + 1 < len(cfg.levels):
            fc = reconstruct.next_features(level.tap, cfg.levels[i + 1].tap, blend, ctx)[0].detach()
        else:
            image = reconstruct.image(level.tap, blend, ctx)
        del blend
        seconds = {"encode": t_encode} if i == 0 else {}
        level_stats.seconds = {**seconds, **level_stats.seconds, "reconstruct": now(content) - t0}
        stats.append(level_stats)
    return image, stats


def _shared(features: torch.Tensor, kept: dict[str, torch.Tensor]) -> bool:
    """Whether ``features`` lies in the storage of a map ``ctx`` keeps (which the level must not overwrite)."""
    ptr = features.untyped_storage().data_ptr()
    return any(t.untyped_storage().data_ptr() == ptr for t in kept.values())

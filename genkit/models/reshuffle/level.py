"""One level of the reshuffle: match -> vote -> blend, iterated.

``F <- content``; each iteration matches ``F`` against the style (global top-k search when there is no
previous assignment, else a local search around it), solves the usage-limited assignment, votes the target
from the full-dimensional style features and blends ``F <- alpha*content + (1-alpha)*voted``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
from genkit.models.reshuffle.features import MatchSpace
from genkit.models.reshuffle.matching import (NEG_INF, dense_topk, local_candidates, mask_duplicates, pair_scores)
from genkit.models.reshuffle.solver import argmax_assign, capacities, fill_unassigned, greedy_assign
from genkit.models.reshuffle.stats import LevelStats, now, usage_summary
from genkit.models.reshuffle.voting import vote


@dataclass
class LevelResult:
    features: torch.Tensor  # (C, Hc, Wc) blended target after the last iteration
    voted: torch.Tensor  # (C, Hc, Wc) the last voted map (pure rearranged style features)
    assign: torch.Tensor  # (Hc*Wc,) flat style indices
    stats: LevelStats


def reshuffle_level(content: torch.Tensor, style: torch.Tensor, level: LevelConfig, cfg: ReshuffleConfig,
                    init_assign: torch.Tensor | None = None, labels_c: torch.Tensor | None = None,
                    labels_s: torch.Tensor | None = None, generator: torch.Generator | None = None) -> LevelResult:
    """Reshuffle ``style`` (C, Hs, Ws) onto ``content`` (C, Hc, Wc) at one level.

    ``init_assign``: a starting assignment (e.g. upsampled from the coarser level) that enables local search;
    ``labels_c``/``labels_s``: flat per-position labels; matching is then restricted to equal labels.
    """
    if content.shape[0] != style.shape[0]:
        raise ValueError(f"channel mismatch: content {tuple(content.shape)} vs style {tuple(style.shape)}")
    generator = generator or torch.Generator().manual_seed(cfg.seed)
    _, hc, wc = content.shape
    _, hs, ws = style.shape
    n_c, n_s = hc * wc, hs * ws
    chunk = cfg.chunk_elements
    timing = {"match": 0.0, "vote": 0.0}

    t0 = now(content)
    space = MatchSpace.fit(content, style, level.patch_size, level.pca_dims, level.patch_dims, seed=cfg.seed,
                           chunk_elements=chunk)
    es = space.embed(style)
    cap, limits = capacities(cfg.usage_limit, n_s, n_c, labels_c, labels_s, device=content.device)
    fill_cap = cap if cap is not None else torch.full((n_s,), n_c, dtype=torch.long, device=content.device)
    timing["match"] += now(content) - t0

    feats, assign, voted, ec = content, init_assign, content, None
    searches, n_filled = [], 0
    for _ in range(level.iterations):
        t0 = now(content)
        ec = space.embed(feats)
        use_global = level.search == "global" or (level.search == "auto" and assign is None)
        if use_global:
            cand, sim = dense_topk(ec, es, 1 if cap is None else cfg.top_k, labels_c=labels_c, labels_s=labels_s,
                                   chunk_elements=chunk)
        else:
            cand = local_candidates(assign, (hc, wc), (hs, ws), cfg.window, cfg.n_random, generator)
            sim = mask_duplicates(cand, pair_scores(ec, es, cand, chunk_elements=chunk))
            if labels_c is not None:
                sim.masked_fill_(labels_s[cand] != labels_c[:, None], NEG_INF)
        searches.append("global" if use_global else "local")
        if cap is None:
            assign = argmax_assign(cand, sim)
            assign[sim.max(dim=1).values == NEG_INF] = -1  # no same-label candidate: found by the fill below
        else:
            assign = greedy_assign(cand, sim, cap, max_rounds=cfg.max_rounds)

        def topk_fn(rows, cols, k, ec=ec):
            return dense_topk(ec, es, k, rows=rows, cols=cols, labels_c=labels_c, labels_s=labels_s,
                              chunk_elements=chunk)

        n_filled = fill_unassigned(assign, fill_cap, topk_fn, labels_c, labels_s, style_width=ws, generator=generator)
        timing["match"] += now(content) - t0
        t0 = now(content)
        voted = vote(style, assign, (hc, wc), level.patch_size)
        feats = level.alpha * content + (1.0 - level.alpha) * voted
        timing["vote"] += now(content) - t0

    usage = usage_summary(assign, n_s)
    mean_sim = float(pair_scores(ec, es, assign[:, None], chunk_elements=chunk).mean())
    limit = limits["all"] if "all" in limits else limits
    stats = LevelStats(
        tap=level.tap, content_hw=(hc, wc), style_hw=(hs, ws), usage_limit=limit, max_usage=usage["max_usage"],
        distinct_used=usage["distinct_used"], distinct_fraction=usage["distinct_fraction"],
        effective_fraction=usage["effective_fraction"], mean_similarity=mean_sim, n_filled=n_filled,
        iterations=level.iterations, searches=searches, seconds=timing,
        assignment=assign.view(hc, wc).cpu(), usage=usage["usage"].view(hs, ws).cpu())
    return LevelResult(features=feats, voted=voted, assign=assign, stats=stats)

"""One level of the reshuffle: match -> vote -> blend, iterated until the target settles.

``F <- content``; each iteration matches ``F`` against the style (global top-k search when there is no
previous assignment, else a local search around it), solves the usage-limited assignment, votes the target
from the full-dimensional style features and blends ``F <- alpha*content + (1-alpha)*voted``. The level stops
after ``level.iterations`` iterations, or earlier once ``F`` changes by less than ``cfg.tolerance`` (relative L2
norm) from one iteration to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
from genkit.models.reshuffle.features import MatchSpace, assigned_patch_cosine
from genkit.models.reshuffle.matching import (NEG_INF, dense_topk, label_mismatch, local_candidates, mask_duplicates,
                                              pair_scores, upsample_assignment)
from genkit.models.reshuffle.solver import solve
from genkit.models.reshuffle.stats import LevelStats, now, usage_summary
from genkit.models.reshuffle.voting import Voter


SIMILARITY_SAMPLE = 4096  # positions the reported mean similarity is computed on (all below that)


@dataclass
class LevelResult:
    features: torch.Tensor  # (C, Hc, Wc) blended target after the last iteration
    voted: torch.Tensor  # (C, Hc, Wc) the last voted map (pure rearranged style features; the level's buffer)
    assign: torch.Tensor  # (Hc*Wc,) flat style indices
    stats: LevelStats


def relative_change(new: torch.Tensor, old: torch.Tensor, block: int = 16) -> float:
    """``||new - old|| / ||old||``, a few channels at a time (no full-size temporary)."""
    num = sum(float((new[i:i + block] - old[i:i + block]).pow(2).sum()) for i in range(0, new.shape[0], block))
    return (num ** 0.5) / max(float(old.norm()), 1e-12)


def reshuffle_level(content: torch.Tensor, style: torch.Tensor, level: LevelConfig, cfg: ReshuffleConfig,
                    init_assign: torch.Tensor | None = None, labels_c: torch.Tensor | None = None,
                    labels_s: torch.Tensor | None = None, generator: torch.Generator | None = None) -> LevelResult:
    """Reshuffle ``style`` (C, Hs, Ws) onto ``content`` (C, Hc, Wc) at one level.

    ``init_assign``: a starting assignment (e.g. upsampled from the coarser level) that enables local search;
    ``labels_c``/``labels_s``: flat per-position labels; matching is then restricted to equal labels (content
    label -1: unrestricted).
    """
    if content.shape[0] != style.shape[0]:
        raise ValueError(f"channel mismatch: content {tuple(content.shape)} vs style {tuple(style.shape)}")
    generator = generator or torch.Generator().manual_seed(cfg.seed)
    _, hc, wc = content.shape
    _, hs, ws = style.shape
    n_s = hs * ws
    chunk = cfg.chunk_elements
    timing = {"match": 0.0, "vote": 0.0}
    rule = cfg.usage_rule()

    t0 = now(content)
    space = MatchSpace.fit(content, style, level.patch_size, level.pca_dims, level.patch_dims, seed=cfg.seed,
                           chunk_elements=chunk)
    es = space.embed(style)
    timing["match"] += now(content) - t0
    voter = Voter(style, level.patch_size)

    feats, assign, voted = content, init_assign, content
    pooled_note = None
    if assign is None and level.search != "global" and labels_c is None:
        factor = 1
        while (hc // factor) * (wc // factor) * (hs // factor) * (ws // factor) > cfg.max_global_pairs:
            factor *= 2
        if factor > 1:  # a quadratic search this large: search a pooled grid, refine locally at full resolution
            t0 = now(content)
            assign = pooled_global_assignment(content, style, space, factor, rule, cfg)
            pooled_note = (f"global search on a {factor}x average-pooled grid ({hc * wc} x {n_s} pairs exceed "
                           f"max_global_pairs={cfg.max_global_pairs}), refined by local search")
            timing["match"] += now(content) - t0
    searches: list[str] = []
    changes: list[float] = []
    converged = False
    fill = cap = None
    for it in range(level.iterations):
        t0 = now(content)
        query = feats
        ec = space.embed(query)
        use_global = level.search == "global" or (level.search == "auto" and assign is None)
        if use_global:
            cand, sim = dense_topk(ec, es, 1 if rule.mode == "none" else cfg.top_k, labels_c=labels_c,
                                   labels_s=labels_s, chunk_elements=chunk)
        else:
            cand = local_candidates(assign, (hc, wc), (hs, ws), cfg.window, cfg.n_random, generator)
            sim = mask_duplicates(cand, pair_scores(ec, es, cand, chunk_elements=chunk))
            if labels_c is not None:
                sim.masked_fill_(label_mismatch(labels_c[:, None], labels_s[cand]), NEG_INF)
        searches.append("global" if use_global else "local")

        assign, fill, cap = solve(cand, sim, rule, n_s, ec, es, labels_c, labels_s, top_k=cfg.top_k,
                                  exact_rows=cfg.exact_fill_rows, max_rounds=cfg.max_rounds, chunk_elements=chunk,
                                  style_hw=(hs, ws))
        timing["match"] += now(content) - t0
        t0 = now(content)
        voted = voter(assign, (hc, wc))
        new = torch.lerp(content, voted, 1.0 - level.alpha)  # alpha*content + (1-alpha)*voted, one allocation
        changes.append(relative_change(new, feats))
        feats = new
        timing["vote"] += now(content) - t0
        if it > 0 and changes[-1] < cfg.tolerance:
            converged = True
            break

    t0 = now(content)
    usage = usage_summary(assign, n_s)
    # the features the final assignment was matched for, against the style: full-dimensional, exact patches
    n_c = hc * wc
    sample = None
    if n_c > SIMILARITY_SAMPLE:
        sample = torch.randperm(n_c, generator=torch.Generator().manual_seed(cfg.seed))[:SIMILARITY_SAMPLE]
    mean_sim = float(assigned_patch_cosine(query, style, assign, level.patch_size, chunk,
                                           positions=None if sample is None else sample.to(assign.device)).mean())
    timing["stats"] = now(content) - t0
    approximate = space.describe(content.shape[0])
    if sample is not None:
        approximate.append(f"mean_similarity over a random sample of {SIMILARITY_SAMPLE} of {n_c} positions")
    if "local" in searches:
        approximate.append(f"local search (window {cfg.window}, propagation, {cfg.n_random} random probes) "
                           "around the previous or upsampled assignment")
    if "global" in searches and rule.mode != "none":
        approximate.append(f"global search keeps each position's top {cfg.top_k} candidates")
    if pooled_note:
        approximate.append(pooled_note)
    stats = LevelStats(
        tap=level.tap, content_hw=(hc, wc), style_hw=(hs, ws), usage_limit=cap.limit, max_usage=usage["max_usage"],
        distinct_used=usage["distinct_used"], distinct_fraction=usage["distinct_fraction"],
        effective_fraction=usage["effective_fraction"], mean_similarity=mean_sim, n_filled=fill.filled,
        iterations=len(searches), searches=searches, seconds=timing,
        placed_without_similarity=fill.placed_without_similarity,
        fill={"local": fill.local, "greedy": fill.greedy, "exact": fill.exact, "chunked": fill.chunked},
        usage_quota=None if cap.cap is None else _per_label(cap.info, "quota"),
        capacity_total=None if cap.cap is None else int(cap.cap.sum()), max_iterations=level.iterations,
        converged=converged, changes=changes, approximate=approximate,
        assignment=assign.view(hc, wc).cpu(), usage=usage["usage"].view(hs, ws).cpu(),
        capacity=None if cap.cap is None else cap.cap.view(hs, ws).cpu())
    return LevelResult(features=feats, voted=voted, assign=assign, stats=stats)


def pooled_global_assignment(content: torch.Tensor, style: torch.Tensor, space: MatchSpace, factor: int,
                             rule, cfg: ReshuffleConfig) -> torch.Tensor:
    """A starting assignment from the usage-limited global search on ``factor`` x average-pooled maps (same
    projections), upsampled to the full grids."""
    from torch.nn import functional as F

    fc = F.avg_pool2d(content[None], factor, ceil_mode=True)[0]
    fs = F.avg_pool2d(style[None], factor, ceil_mode=True)[0]
    ec, es = space.embed(fc), space.embed(fs)
    n_s = fs.shape[1] * fs.shape[2]
    cand, sim = dense_topk(ec, es, 1 if rule.mode == "none" else cfg.top_k, chunk_elements=cfg.chunk_elements)

    assign, _, _ = solve(cand, sim, rule, n_s, ec, es, top_k=cfg.top_k, exact_rows=cfg.exact_fill_rows,
                         max_rounds=cfg.max_rounds, chunk_elements=cfg.chunk_elements)
    return upsample_assignment(assign, tuple(fc.shape[1:]), tuple(fs.shape[1:]), tuple(content.shape[1:]),
                               tuple(style.shape[1:]))


def _per_label(info: dict, key: str):
    if set(info) == {"all"}:
        return info["all"][key]
    return {k: v[key] for k, v in info.items()}

"""One level of the reshuffle: match -> vote -> blend, iterated until the target settles.

``F <- content``; each iteration matches ``F`` against the style (global top-k search when there is no
previous assignment, else a PatchMatch search from it), solves the usage-limited assignment, votes the target
from the full-dimensional style features and blends ``F <- alpha*content + (1-alpha)*voted``. The level stops
after ``level.iterations`` iterations, or earlier once the matching has settled (``cfg.stop_on``: the mean
matched similarity (the reported true cosine) improves by less than ``cfg.tolerance``; or the share of changed
matches, or the blend's relative change, is below it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
from genkit.models.reshuffle.features import MatchSpace, assigned_patch_cosine
from genkit.models.reshuffle.matching import dense_topk, patchmatch, upsample_assignment
from genkit.models.reshuffle.solver import solve
from genkit.models.reshuffle.stats import LevelStats, now, usage_summary
from genkit.models.reshuffle.voting import Voter


# positions the reported mean similarity is computed on (all below that); it is computed at every iteration (the
# stopping rule watches it), and 4096 cost 16% of a 512 px transfer (the gathers of 5x5 full-dimensional patches)
SIMILARITY_SAMPLE = 2048


@dataclass
class LevelResult:
    features: torch.Tensor  # (C, Hc, Wc) blended target after the last iteration
    assign: torch.Tensor  # (Hc*Wc,) flat style indices
    stats: LevelStats


def reshuffle_level(content: torch.Tensor, style: torch.Tensor, level: LevelConfig, cfg: ReshuffleConfig,
                    init_assign: torch.Tensor | None = None, labels_c: torch.Tensor | None = None,
                    labels_s: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    blend_alpha: float | None = None, overwrite_content: bool = False,
                    start_assign: torch.Tensor | None = None) -> LevelResult:
    """Reshuffle ``style`` (C, Hs, Ws) onto ``content`` (C, Hc, Wc) at one level.

    ``init_assign``: a starting assignment (e.g. upsampled from the coarser level) that enables local search;
    ``labels_c``/``labels_s``: flat per-position labels; matching is then restricted to equal labels (content
    label -1: unrestricted). ``blend_alpha``: the content's weight in the blend (default ``level.alpha``).
    ``overwrite_content``: the caller gives the content map up; above ``cfg.blend_in_place_above`` values the blend
    is then built in its storage (one map instead of two, for a second vote per iteration).
    ``start_assign``: a *warm start* (e.g. the coarser level's assignment, upsampled): the first iteration matches
    the blend of the content with this assignment's vote instead of the content alone, one step further along the
    fixed point ``F = a*content + (1-a)*vote(match(F))`` that the iterations approach.
    """
    if content.shape[0] != style.shape[0]:
        raise ValueError(f"channel mismatch: content {tuple(content.shape)} vs style {tuple(style.shape)}")
    run = _LevelRun(content, style, level, cfg, labels_c, labels_s, generator)
    blend_alpha = level.alpha if blend_alpha is None else blend_alpha
    assign, pooled_note = init_assign, None
    if assign is None and level.search != "global" and labels_c is None:
        assign, pooled_note = run.pooled_start()
    # above blend_in_place_above values the blend is built in the content's own storage; later iterations then move
    # it by the change of the vote, as the content map is gone (memory); else it is built in a copy
    in_place = overwrite_content and content.numel() > cfg.blend_in_place_above
    feats, knn, fill, cap, previous = content, None, None, None, None
    keep = content  # what the blend lerps from; None once the content map holds the blend (in place)
    if start_assign is not None:
        t0 = now(content)
        feats = content if in_place else content.clone()
        run.voter.update(feats, start_assign, 1.0 - blend_alpha, content=content)
        if in_place:
            keep, previous = None, start_assign
        run.timing["vote"] += now(content) - t0
    for it in range(level.iterations):
        t0 = now(content)
        ec = run.space.embed(feats)
        cand, sim, knn = run.search(ec, assign, knn)
        new_assign, fill, cap = solve(cand, sim, run.rule, run.n_s, ec, run.es, labels_c, labels_s, top_k=cfg.top_k,
                                      exact_rows=cfg.exact_fill_rows, max_rounds=cfg.max_rounds,
                                      chunk_elements=cfg.chunk_elements, style_hw=run.style_hw,
                                      fill_probes=cfg.fill_probes, swap_rounds=cfg.swap_rounds)
        del ec, cand, sim  # memory: the vote needs none of them
        run.record_match(new_assign, assign)
        assign = new_assign
        # the true similarity of the features just matched, before the blend overwrites them: reported, and what
        # the default stopping rule watches (the matching space's similarity moves with its approximations)
        run.similarities.append(run.reported_similarity(feats, assign))
        last = it + 1 == level.iterations or (it > 0 and run.settled("match"))
        run.timing["match"] += now(content) - t0
        t0 = now(content)
        if feats is content and not in_place:
            feats = content.clone()  # the first change is measured from the content
        run.changes.append(run.voter.update(feats, assign, 1.0 - blend_alpha, content=keep, previous=previous))
        if in_place:
            keep = None
        previous = assign
        run.timing["vote"] += now(content) - t0
        if last or (it > 0 and run.settled("blend")):
            break
    stats = run.stats(run.similarities[-1], assign, fill, cap, pooled_note)
    stats.alpha, stats.blend_alpha, stats.warm_start = level.alpha, blend_alpha, start_assign is not None
    return LevelResult(features=feats, assign=assign, stats=stats)


class _LevelRun:
    """The bookkeeping of one level: projections, search, per-iteration records, stopping rule and statistics."""

    def __init__(self, content, style, level: LevelConfig, cfg: ReshuffleConfig, labels_c, labels_s, generator):
        self.level, self.cfg, self.labels_c, self.labels_s = level, cfg, labels_c, labels_s
        self.generator = generator or torch.Generator().manual_seed(cfg.seed)
        self.content, self.style = content, style
        self.content_hw, self.style_hw = tuple(content.shape[1:]), tuple(style.shape[1:])
        self.n_s = self.style_hw[0] * self.style_hw[1]
        self.rule = cfg.usage_rule()
        self.timing = {"match": 0.0, "vote": 0.0}
        self.searches: list[str] = []
        self.changes: list[float] = []
        self.similarities: list[float] = []
        self.changed: list[float] = []
        self.stop_reason = "iterations"
        self.sample = None  # the positions the reported similarity is computed on (None: all)
        t0 = now(content)
        self.space = MatchSpace.fit(content, style, level.patch_size, level.pca_dims, level.patch_dims, seed=cfg.seed,
                                    chunk_elements=cfg.chunk_elements)
        self.es = self.space.embed(style)
        self.timing["match"] += now(content) - t0
        self.voter = Voter(style, level.patch_size, chunk_elements=cfg.chunk_elements)

    def pooled_start(self) -> tuple[torch.Tensor | None, str | None]:
        """A pooled global search when the exact one exceeds ``max_global_pairs`` (else no start)."""
        (hc, wc), (hs, ws), cfg = self.content_hw, self.style_hw, self.cfg
        factor = 1
        while (hc // factor) * (wc // factor) * (hs // factor) * (ws // factor) > cfg.max_global_pairs:
            factor *= 2
        if factor == 1:
            return None, None
        t0 = now(self.content)
        assign = pooled_global_assignment(self.content, self.style, self.space, factor, self.rule, cfg)
        self.timing["match"] += now(self.content) - t0
        return assign, (f"global search on a {factor}x average-pooled grid ({hc * wc} x {self.n_s} pairs exceed "
                        f"max_global_pairs={cfg.max_global_pairs}), refined by PatchMatch")

    def search(self, ec, assign, knn):
        """Candidates for one iteration: the global top-k, or PatchMatch from the previous candidate list (or the
        starting assignment). Returns ``(cand, sim, knn)``; ``knn`` carries the list to the next iteration."""
        level, cfg = self.level, self.cfg
        if level.search == "global" or (level.search == "auto" and assign is None):
            self.searches.append("global")
            cand, sim = dense_topk(ec, self.es, 1 if self.rule.mode == "none" else cfg.top_k, labels_c=self.labels_c,
                                   labels_s=self.labels_s, chunk_elements=cfg.chunk_elements)
            return cand, sim, cand[:, :cfg.knn]
        self.searches.append("local")
        # the current assignment joins the list in place of its last (least similar) candidate: the list keeps its
        # width, so the sweeps update it in place (memory)
        start = assign[:, None] if knn is None else torch.cat([assign[:, None], knn[:, :cfg.knn - 1]], 1)
        # from a starting assignment: the full search; from the previous iteration's list, one light sweep refines it
        sweeps, n_random = (cfg.sweeps, cfg.n_random) if knn is None else (1, 1)
        cand, sim = patchmatch(ec, self.es, start, self.content_hw, self.style_hw, knn=cfg.knn, sweeps=sweeps,
                               n_random=n_random, generator=self.generator, labels_c=self.labels_c,
                               labels_s=self.labels_s, window=cfg.window, chunk_elements=cfg.chunk_elements)
        return cand, sim, cand

    def record_match(self, new_assign, old_assign) -> None:
        if old_assign is not None:
            self.changed.append(float((new_assign != old_assign).float().mean()))

    def settled(self, stage: str) -> bool:
        """The early-stopping rule (``cfg.stop_on``, ``cfg.tolerance``); sets ``stop_reason``. ``stage``:
        ``"match"`` (the similarity and changed rules, known once the matching is done) or ``"blend"``."""
        cfg = self.cfg
        if cfg.tolerance <= 0 or (stage == "blend") != (cfg.stop_on == "blend"):
            return False
        if cfg.stop_on == "similarity":
            done = self.similarities[-1] - self.similarities[-2] < cfg.tolerance
        elif cfg.stop_on == "changed":
            done = bool(self.changed) and self.changed[-1] < cfg.tolerance
        else:
            done = self.changes[-1] < cfg.tolerance
        if done:
            self.stop_reason = cfg.stop_on
        return done

    def reported_similarity(self, query: torch.Tensor, assign: torch.Tensor) -> float:
        """The reported mean similarity: full-dimensional, exact patches, of the features ``query`` just matched
        (on a random sample of ``SIMILARITY_SAMPLE`` positions above that many)."""
        t0 = now(self.content)
        n_c = self.content_hw[0] * self.content_hw[1]
        if n_c > SIMILARITY_SAMPLE and self.sample is None:  # one fixed sample per level: increments are paired
            self.sample = torch.randperm(n_c, generator=torch.Generator().manual_seed(self.cfg.seed))[
                :SIMILARITY_SAMPLE].to(assign.device)
        out = float(assigned_patch_cosine(query, self.style, assign, self.level.patch_size, self.cfg.chunk_elements,
                                          positions=self.sample).mean())
        self.timing["stats"] = self.timing.get("stats", 0.0) + now(self.content) - t0
        return out

    def stats(self, mean_sim: float, assign, fill, cap, pooled_note) -> LevelStats:
        level, cfg = self.level, self.cfg
        (hc, wc), (hs, ws) = self.content_hw, self.style_hw
        usage = usage_summary(assign, self.n_s)
        n_c = hc * wc
        return LevelStats(
            tap=level.tap, content_hw=(hc, wc), style_hw=(hs, ws), usage_limit=cap.limit,
            max_usage=usage["max_usage"], distinct_used=usage["distinct_used"],
            distinct_fraction=usage["distinct_fraction"], effective_fraction=usage["effective_fraction"],
            mean_similarity=mean_sim, n_filled=fill.filled, iterations=len(self.searches), searches=self.searches,
            seconds=self.timing, fill={"local": fill.local, "greedy": fill.greedy, "exact": fill.exact,
                                       "chunked": fill.chunked},
            fill_share=fill.fill_share, fill_similarity=fill.fill_similarity, swapped=fill.swapped,
            matched_similarity=fill.matched_similarity,
            usage_quota=None if cap.cap is None else _per_label(cap.info, "quota"),
            capacity_total=None if cap.cap is None else int(cap.cap.sum()), max_iterations=level.iterations,
            converged=self.stop_reason != "iterations", stop_reason=self.stop_reason, changes=self.changes,
            similarities=self.similarities, changed=self.changed,
            approximate=self._approximations(n_c > SIMILARITY_SAMPLE, n_c, pooled_note),
            assignment=assign.view(hc, wc).cpu(), usage=usage["usage"].view(hs, ws).cpu(),
            capacity=None if cap.cap is None else cap.cap.view(hs, ws).cpu())

    def _approximations(self, sampled: bool, n_c: int, pooled_note) -> list[str]:
        cfg = self.cfg
        out = self.space.describe(self.content.shape[0])
        if sampled:
            out.append(f"mean_similarity over a random sample of {SIMILARITY_SAMPLE} of {n_c} positions")
        if "local" in self.searches:
            out.append(f"PatchMatch search ({cfg.sweeps} sweeps of propagation and {cfg.n_random} random probe(s) per "
                       f"radius down to 1, {cfg.knn} candidates kept per position) around the previous or upsampled "
                       "assignment")
        if "global" in self.searches and self.rule.mode != "none":
            out.append(f"global search keeps each position's top {cfg.top_k} candidates")
        if pooled_note:
            out.append(pooled_note)
        return out


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
                         max_rounds=cfg.max_rounds, chunk_elements=cfg.chunk_elements, swap_rounds=cfg.swap_rounds)
    return upsample_assignment(assign, tuple(fc.shape[1:]), tuple(fs.shape[1:]), tuple(content.shape[1:]),
                               tuple(style.shape[1:]))


def _per_label(info: dict, key: str):
    if set(info) == {"all"}:
        return info["all"][key]
    return {k: v[key] for k, v in info.items()}

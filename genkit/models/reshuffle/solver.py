"""Constrained assignment: every content position gets one style position, no style position more than its
capacity (the usage limit).

Capacities (:func:`capacities`): with the automatic limit each style position may be used ``q = slack*Nc/Ns``
times *on average*: ``floor(q)`` or ``ceil(q)`` per position, the ceil going to the positions the content asks
for most, so that the total is exactly ``max(Nc, ceil(slack*Nc))`` (slack 1: every slot is used, usage is as even
as integers allow). A fixed ``max_usage`` gives every position that integer.

:func:`greedy_assign` computes exactly the result of one global greedy pass over all candidate pairs sorted by
similarity (accept a pair while the content position is free and the style position has capacity left), the
solver the design notes measured to work. It is run as deferred acceptance: content positions propose down
their candidate lists, each style position holds its best ``capacity`` proposals and rejects the rest. With
preferences that come from one shared similarity, the stable matching this produces is unique and equals the
greedy one, and every round is a handful of vectorised sorts instead of a Python loop over pairs.

:func:`fill_unassigned` then places the leftover positions (all their candidates were full) on the free capacity
**by similarity only**: the most similar free position near each one's best candidate, greedy passes over each
one's most similar free positions anywhere, then a maximum-similarity assignment
(``scipy.optimize.linear_sum_assignment``) of the rest to the free slots: in one piece when few are left, else
chunk by chunk (the most similar leftovers first), each chunk exactly. No position is placed by grid order; every
similarity is computed exactly (no subsampled search).

:func:`solve` runs the three for one iteration of a level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from genkit.core.errors import ConfigError
from genkit.models.reshuffle.matching import PROPOSAL_TEMPORARIES, mask_duplicates, pair_scores, search_radii

NEG_INF = float("-inf")
# the fill's passes near each leftover's hint: (radius, step) windows, then (0, 0) random-probe passes. A 17x17
# window (every other position) and a second random pass as well cost 12-18% of a 512 px transfer's matching for a
# final similarity within +-0.0024 (three pairs, each level; benchmarks/stylize.py --parts search has the fill share)
NEAR_HINT_PASSES = ((2, 1), (0, 0))


# ------------------------------------------------------------------------------------------------ capacities
@dataclass(frozen=True)
class UsageRule:
    """How often a style position may be used.

    ``mode``: ``"auto"`` (average ``slack * Nc / Ns`` per position, floor/ceil split, exact total),
    ``"fixed"`` (``limit`` uses per position) or ``"none"`` (unconstrained: style-swap).
    """

    mode: str = "auto"
    slack: float = 1.0
    limit: int | None = None

    def total(self, n_content: int, n_style: int) -> int | None:
        """Total capacity of a region: what the per-position capacities sum to."""
        if self.mode == "none":
            return None
        if self.mode == "fixed":
            return int(self.limit) * n_style
        return max(n_content, math.ceil(self.slack * n_content - 1e-9))


def split_capacity(n_style: int, total: int, demand: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """``n_style`` integer capacities, each ``floor(total/n_style)`` or ``ceil``, summing exactly to ``total``.

    The ``total mod n_style`` extra units go to the positions of highest ``demand`` (e.g. how many content
    positions rank them first; ties by index), or evenly spread over the positions when no demand is given.
    """
    base, extra = divmod(int(total), int(n_style))
    cap = torch.full((n_style,), base, dtype=torch.long, device=device)
    if extra:
        if demand is None:
            idx = (torch.arange(extra, device=device) * n_style) // extra
        else:
            idx = demand.to(device).argsort(descending=True, stable=True)[:extra]
        cap[idx] += 1
    return cap


@dataclass
class Capacity:
    """Per-style-position capacity (``cap`` None: unconstrained) and what it came from, per label."""

    cap: torch.Tensor | None
    info: dict = field(default_factory=dict)  # label (or "all") -> {"quota", "limit", "total"}

    @property
    def limit(self):
        """The largest per-position capacity: an int, one per label (dict), or None."""
        if self.cap is None:
            return None
        if set(self.info) == {"all"}:
            return self.info["all"]["limit"]
        return {k: v["limit"] for k, v in self.info.items()}


def _region(rule: UsageRule, n_content: int, n_style: int, demand, device, what: str) -> tuple[torch.Tensor, dict]:
    total = rule.total(n_content, n_style)
    if total < n_content:
        raise ConfigError(f"max_usage={rule.limit} is too small{what}: {n_style} style positions x {rule.limit} < "
                          f"{n_content} content positions (raise max_usage or use 'auto')")
    cap = split_capacity(n_style, total, demand, device)
    info = {"quota": round(total / n_style, 6), "limit": int(cap.max()), "total": int(total)}
    return cap, info


def capacities(rule: UsageRule, n_style: int, n_content: int, labels_c: torch.Tensor | None = None,
               labels_s: torch.Tensor | None = None, demand: torch.Tensor | None = None, device=None) -> Capacity:
    """Capacities for one assignment problem.

    With labels, content positions of label ``l`` may only use style positions of label ``l`` and each label
    gets its own quota (``labels_c`` must only hold labels present in ``labels_s``; unrestricted positions are
    solved separately). ``demand``: per style position, how strongly the content wants it (the extra units of
    a fractional quota go there).
    """
    if rule.mode == "none":
        return Capacity(None, {"all": {"quota": None, "limit": None, "total": None}})
    if labels_c is None:
        cap, info = _region(rule, n_content, n_style, demand, device, "")
        return Capacity(cap, {"all": info})
    cap = torch.zeros(n_style, dtype=torch.long, device=device)
    infos = {}
    c_labels, c_counts = labels_c.unique(return_counts=True)
    for lab, nc in zip(c_labels.tolist(), c_counts.tolist()):
        where = (labels_s == lab).nonzero().squeeze(1)
        if where.numel() == 0:
            raise ValueError(f"content label {lab} has no style positions; solve it unrestricted")
        sub, info = _region(rule, nc, where.numel(), None if demand is None else demand[where], device,
                            f" for label {lab}")
        cap[where] = sub
        infos[lab] = info
    return Capacity(cap, infos)


# ------------------------------------------------------------------------------------------------ greedy
def greedy_assign(cand: torch.Tensor, sim: torch.Tensor, capacity: torch.Tensor,
                  max_rounds: int | None = None, chunk_elements: int = 1 << 22) -> torch.Tensor:
    """Capacity-limited greedy matching over candidate lists.

    ``cand``/``sim``: ``(N, K)`` style indices and similarities (``-inf`` marks an unusable candidate);
    ``capacity``: ``(N_style,)`` how often each style position may still be used. Returns ``(N,)`` style
    indices, ``-1`` where a content position got none of its candidates.

    A rejected position skips, in one step, every candidate that would reject it too: a full style position
    whose weakest held proposal is at least as similar (held proposals only get better, so the skip is exact).
    Contested lists then take a few rounds instead of one round per candidate.
    """
    n, k = cand.shape
    dev = cand.device
    assign = torch.full((n,), -1, dtype=torch.long, device=dev)
    if n == 0 or k == 0:
        return assign
    chunk_rows = max(1, chunk_elements // k)
    if not bool((sim[:, 1:] <= sim[:, :-1]).all()):  # lists from a top-k come sorted: no copies then
        order = sim.argsort(dim=1, descending=True, stable=True)
        cand = cand.gather(1, order)
        sim = sim.gather(1, order)
    n_style = capacity.numel()
    cols = torch.arange(k, device=dev)
    ptr = torch.zeros(n, dtype=torch.long, device=dev)
    held_c = torch.empty(0, dtype=torch.long, device=dev)
    held_s = torch.empty(0, dtype=torch.long, device=dev)
    held_v = torch.empty(0, dtype=sim.dtype, device=dev)
    cand_flat, sim_flat = cand.reshape(-1), sim.reshape(-1)
    free = torch.arange(n, device=dev)
    rounds = 0
    while free.numel() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        if rounds > 1 and held_s.numel():
            # the weakest held value of every full style position: anything not above it is rejected there
            count = torch.bincount(held_s, minlength=n_style)
            weakest = torch.full((n_style,), float("inf"), dtype=sim.dtype, device=dev)
            weakest.scatter_reduce_(0, held_s, held_v, reduce="amin")
            bar = torch.where(count >= capacity, weakest, torch.full_like(weakest, NEG_INF))
            for i in range(0, free.numel(), chunk_rows):  # row chunks: no (free x K) temporaries
                f = free[i:i + chunk_rows]
                viable = (sim.index_select(0, f) > bar[cand.index_select(0, f)]) & \
                    (cols[None, :] >= ptr.index_select(0, f)[:, None])
                ptr[f] = torch.where(viable.any(dim=1), viable.byte().argmax(dim=1), torch.full_like(f, k))
        free = free[ptr.index_select(0, free) < k]
        p = ptr.index_select(0, free)
        flat = free * k + p  # (row, pointer) pairs as flat indices: one gather instead of 2-D indexing
        v = sim_flat.index_select(0, flat)
        ok = (v > NEG_INF).nonzero().squeeze(1)
        free, v = free.index_select(0, ok), v.index_select(0, ok)
        if not free.numel():
            break
        s = cand_flat.index_select(0, flat.index_select(0, ok))
        # only style positions that received proposals re-rank their pool (index lists, not boolean masks: each
        # mask would run its own nonzero per tensor it selects from)
        touched = torch.zeros(n_style, dtype=torch.bool, device=dev)
        touched[s] = True
        in_pool = touched[held_s]
        rejoin, stay = in_pool.nonzero().squeeze(1), (~in_pool).nonzero().squeeze(1)
        pool_c = torch.cat([held_c.index_select(0, rejoin), free])
        pool_s = torch.cat([held_s.index_select(0, rejoin), s])
        pool_v = torch.cat([held_v.index_select(0, rejoin), v])
        o = pool_v.argsort(descending=True, stable=True)
        o = o.index_select(0, pool_s.index_select(0, o).argsort(stable=True))  # by style, best first within one
        pool_c, pool_s, pool_v = pool_c.index_select(0, o), pool_s.index_select(0, o), pool_v.index_select(0, o)
        pos = torch.arange(pool_s.numel(), device=dev)
        first = torch.ones_like(pool_s, dtype=torch.bool)
        first[1:] = pool_s[1:] != pool_s[:-1]
        rank = pos - torch.where(first, pos, torch.zeros_like(pos)).cummax(0).values  # rank within its style group
        keep = rank < capacity.index_select(0, pool_s)
        kept, dropped = keep.nonzero().squeeze(1), (~keep).nonzero().squeeze(1)
        held_c = torch.cat([held_c.index_select(0, stay), pool_c.index_select(0, kept)])
        held_s = torch.cat([held_s.index_select(0, stay), pool_s.index_select(0, kept)])
        held_v = torch.cat([held_v.index_select(0, stay), pool_v.index_select(0, kept)])
        free = pool_c.index_select(0, dropped)
        ptr[free] += 1
    assign[held_c] = held_s
    return assign


def argmax_assign(cand: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
    """Unconstrained: each content position takes its best candidate (style-swap / nearest neighbour)."""
    return cand.gather(1, sim.argmax(dim=1, keepdim=True)).squeeze(1)


def usage_counts(assign: torch.Tensor, n_style: int) -> torch.Tensor:
    return torch.bincount(assign[assign >= 0], minlength=n_style)


# ------------------------------------------------------------------------------------------------ fill
@dataclass
class FillStats:
    """How the leftovers of the greedy pass were placed (all by similarity), and how well.

    ``fill_similarity`` / ``matched_similarity``: the mean similarity (in the matching space) of the positions the
    fill placed / the greedy pass over the candidates placed (None when there are none); :func:`solve` sets them.
    """

    filled: int = 0  # positions the fill placed
    local: int = 0  # ... by a greedy pass over the free positions near their best (full) candidate
    greedy: int = 0  # ... by a greedy pass over their most similar free style positions
    exact: int = 0  # ... by one exact maximum-similarity assignment of all that were left
    chunked: int = 0  # ... by exact assignments chunk by chunk (most similar leftovers first)
    positions: int = 0  # all positions of the problem
    fill_similarity: float | None = None
    matched_similarity: float | None = None
    swapped: int = 0  # exchanges the refinement made after the fill (swap_refine)

    @property
    def fill_share(self) -> float:
        return self.filled / max(self.positions, 1)

    def add(self, other: "FillStats") -> None:
        for k in ("filled", "local", "greedy", "exact", "chunked"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def measure(self, sims: torch.Tensor, by_fill: torch.Tensor) -> None:
        """Set the similarities from each position's matched similarity ``sims`` and the fill's mask ``by_fill``."""
        self.positions = sims.numel()
        self.filled = int(by_fill.sum())
        self.fill_similarity = float(sims[by_fill].mean()) if self.filled else None
        self.matched_similarity = float(sims[~by_fill].mean()) if self.filled < sims.numel() else None


class _FreeScores:
    """Similarities of the leftover rows with the style positions that were free when the fill started (only
    those can gain users), by local index. Held densely when small enough, else computed per row chunk from the
    cached vectors; positions that filled up since are masked with -inf."""

    def __init__(self, row_vectors: torch.Tensor, col_vectors: torch.Tensor, chunk_elements: int):
        self.rv, self.cv, self.chunk_elements = row_vectors, col_vectors, chunk_elements
        self.dense = None
        if row_vectors.shape[0] * col_vectors.shape[0] <= 4 * chunk_elements:
            self.dense = self._compute(torch.arange(row_vectors.shape[0], device=row_vectors.device))

    def _compute(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.empty(rows.numel(), self.cv.shape[0], device=self.rv.device, dtype=self.rv.dtype)
        step = max(1, self.chunk_elements // max(1, self.cv.shape[0]))
        for i in range(0, rows.numel(), step):
            out[i:i + step] = self.rv.index_select(0, rows[i:i + step]) @ self.cv.T
        return out

    def rows(self, rows: torch.Tensor, full: torch.Tensor | None = None) -> torch.Tensor:
        """(len(rows), n_cols) similarities; columns in ``full`` (bool, by local index) set to -inf."""
        s = self.dense.index_select(0, rows) if self.dense is not None else self._compute(rows)
        if full is not None:
            s = s.masked_fill(full[None, :], NEG_INF)
        return s

    def topk(self, rows: torch.Tensor, full: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` free local columns of each row (row chunks bound the memory)."""
        k = min(k, int((~full).sum()))
        cand = torch.empty(rows.numel(), k, dtype=torch.long, device=rows.device)
        sims = torch.empty(rows.numel(), k, device=rows.device, dtype=self.rv.dtype)
        step = max(1, self.chunk_elements // max(1, self.cv.shape[0]))
        for i in range(0, rows.numel(), step):
            sims[i:i + step], cand[i:i + step] = self.rows(rows[i:i + step], full).topk(k, dim=1)
        return cand, sims


def _exact_fill(rows: torch.Tensor, left: torch.Tensor, scores: _FreeScores,
                max_entries: int | None = None) -> torch.Tensor | None:
    """Maximum-total-similarity assignment of local ``rows`` to the free slots (``left`` per local column).

    Only each row's ``len(rows)`` most similar free columns take part (an optimal assignment never needs
    another: one of them always has a slot no other row took), each with at most ``len(rows)`` slots. Returns
    the local column of every row, or None when that problem has more than ``max_entries`` entries.
    """
    from scipy.optimize import linear_sum_assignment

    m = rows.numel()
    sims = scores.rows(rows)
    top = sims.masked_fill((left == 0)[None, :], NEG_INF).topk(min(m, int((left > 0).sum())), dim=1)[1]
    top = top.reshape(-1).unique()
    mult = left[top].clamp_max(m)
    if max_entries is not None and m * int(mult.sum()) > max_entries:
        return None
    slot_cols = torch.repeat_interleave(top, mult)
    matrix = sims.index_select(1, slot_cols).double().cpu().numpy()
    r, c = linear_sum_assignment(matrix, maximize=True)
    out = torch.empty(m, dtype=torch.long, device=rows.device)
    out[torch.as_tensor(r, device=rows.device)] = slot_cols[torch.as_tensor(c, device=rows.device)]
    return out


def _near_hint_lists(rows, hints, style_hw, radius, step, probes, generator, content_vectors, style_vectors,
                     left, keep, chunk_elements) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``keep`` most similar free style positions (``-inf`` past the free ones) among each row's candidates
    near its hint: a ``step``-spaced window of ``radius`` or (radius 0) random probes at every radius. Row chunks
    of about ``chunk_elements / PROPOSAL_TEMPORARIES`` candidates bound the temporaries."""
    n = rows.numel()
    k_all = (2 * (radius // step) + 1) ** 2 if radius else probes * len(search_radii(max(style_hw)))
    k = min(keep, k_all)
    cand = torch.empty(n, k, dtype=torch.long, device=rows.device)
    sim = torch.empty(n, k, dtype=content_vectors.dtype, device=rows.device)
    chunk = max(1, chunk_elements // (PROPOSAL_TEMPORARIES * k_all))
    for i in range(0, n, chunk):
        r = rows[i:i + chunk]
        if radius:
            c = _window_candidates(hints[r], style_hw, radius, step)
        else:  # random probes around the hint at every radius down to 1 (PatchMatch's random search)
            c = _random_candidates(hints[r], style_hw, probes, generator)
        s = pair_scores(content_vectors, style_vectors, c, rows=r)
        s, top = mask_duplicates(c, s.masked_fill(left[c] == 0, NEG_INF)).topk(k, dim=1)
        cand[i:i + chunk], sim[i:i + chunk] = c.gather(1, top), s
    return cand, sim


def _window_candidates(hints: torch.Tensor, style_hw: tuple[int, int], radius: int, step: int) -> torch.Tensor:
    """Style positions on a ``step``-spaced grid of radius ``radius`` around each hint: (N, K) flat indices."""
    hs, ws = style_hw
    offs = torch.arange(-radius, radius + 1, step, device=hints.device)
    y = (hints // ws)[:, None, None] + offs[None, :, None]
    x = (hints % ws)[:, None, None] + offs[None, None, :]
    return (y.clamp(0, hs - 1) * ws + x.clamp(0, ws - 1)).reshape(hints.numel(), -1)


def _random_candidates(hints: torch.Tensor, style_hw: tuple[int, int], per_radius: int,
                       generator: torch.Generator) -> torch.Tensor:
    """``per_radius`` random style positions around each hint at each radius ``max(H, W)/2 ... 1``: (N, K)."""
    hs, ws = style_hw
    radii = torch.tensor(search_radii(max(hs, ws))).repeat_interleave(per_radius)
    n, k = hints.numel(), radii.numel()
    # the offsets are drawn on the host (a CPU generator) and sent to the hints' device: nothing is read back
    off = ((torch.rand(2, n, k, generator=generator) * 2 - 1) * radii).round().long().to(hints.device)
    y = ((hints // ws)[:, None] + off[0]).clamp(0, hs - 1)
    x = ((hints % ws)[:, None] + off[1]).clamp(0, ws - 1)
    return y * ws + x


def fill_unassigned(assign: torch.Tensor, capacity: torch.Tensor, content_vectors: torch.Tensor,
                    style_vectors: torch.Tensor, labels_c: torch.Tensor | None = None,
                    labels_s: torch.Tensor | None = None, k: int = 32, exact_rows: int = 512, chunk_rows: int = 64,
                    exact_entries: int = 1 << 21, chunk_elements: int = 1 << 22, max_rounds: int | None = 50,
                    min_progress: float = 0.25, hints: torch.Tensor | None = None,
                    style_hw: tuple[int, int] | None = None, probes: int = 4) -> FillStats:
    """Assign (in place) every ``-1`` position to free style capacity, by similarity only.

    Similarities are dot products of ``content_vectors`` (one row per entry of ``assign``) and ``style_vectors``
    (one per style position). With labels, rows of label ``l`` only take style positions of label ``l``. With
    ``hints`` (a style position per entry of ``assign``, e.g. its best candidate, which was full) and
    ``style_hw`` and ``probes`` > 0, more than ``exact_rows`` leftovers first look for the most similar free position
    near their hint (greedy over the free positions of a 5x5 window, then over ``probes`` random probes per radius around it,
    radii halving down to 1, as PatchMatch's random search: ``NEAR_HINT_PASSES``). More than
    ``exact_rows`` leftovers then get greedy passes over their ``k`` most similar free style positions
    (while a pass places at least ``min_progress`` of what is left). The rest are assigned by maximum total
    similarity: in one piece when at most ``exact_rows`` remain (and the problem has at most ``exact_entries``
    entries), else chunk by chunk of ``chunk_rows`` (the most similar leftovers first), each chunk exactly.
    Raises ``RuntimeError`` if the free capacity cannot hold the leftovers (the capacities guarantee it can).
    """
    stats = FillStats()
    n_style = capacity.numel()
    if not bool((assign < 0).any()):
        return stats
    groups = [None] if labels_c is None else (labels_c[assign < 0]).unique().tolist()
    for lab in groups:
        todo = assign < 0
        left_all = (capacity - usage_counts(assign, n_style)).clamp_min(0)
        if lab is not None:
            todo &= labels_c == lab
            if lab >= 0:  # label -1: matched without the mask restriction
                left_all = left_all * (labels_s == lab)
        rows_g = todo.nonzero().squeeze(1)  # global rows of this group
        if int(left_all.sum()) < rows_g.numel():
            raise RuntimeError("usage capacity exhausted while filling; this is a bug")
        stats.filled += rows_g.numel()
        if hints is not None and style_hw is not None and probes:  # first: the free positions near each hint
            rows_g = _fill_near_hints(assign, rows_g, left_all, content_vectors, style_vectors, hints, style_hw,
                                      exact_rows, max_rounds, stats, probes, k, chunk_elements)
        if rows_g.numel():
            cols_g = (left_all > 0).nonzero().squeeze(1)  # global style positions with free capacity
            scores = _FreeScores(content_vectors.index_select(0, rows_g), style_vectors.index_select(0, cols_g),
                                 chunk_elements)
            got = _fill_free(scores, left_all[cols_g].clone(), k, exact_rows, chunk_rows, exact_entries, max_rounds,
                             min_progress, stats)
            assign[rows_g] = cols_g[got]
    return stats


def _fill_near_hints(assign, rows_g, left_all, content_vectors, style_vectors, hints, style_hw, exact_rows,
                     max_rounds, stats: FillStats, probes: int = 4, keep: int = 32,
                     chunk_elements: int = 1 << 22) -> torch.Tensor:
    """Greedy passes over the free positions in windows around each row's hint (each row's ``keep`` most similar
    of them); returns the rows still left."""
    n_style = left_all.numel()
    g = torch.Generator().manual_seed(rows_g.numel())
    for radius, step in NEAR_HINT_PASSES:
        if rows_g.numel() <= exact_rows:
            break
        cand, sim = _near_hint_lists(rows_g, hints, style_hw, radius, step, probes, g, content_vectors,
                                     style_vectors, left_all, keep, chunk_elements)
        new = greedy_assign(cand, sim, left_all, max_rounds=max_rounds, chunk_elements=chunk_elements)
        ok = new >= 0
        assign[rows_g[ok]] = new[ok]
        left_all -= torch.bincount(new[ok], minlength=n_style)
        stats.local += int(ok.sum())
        rows_g = rows_g[~ok]
    return rows_g


def _fill_free(scores: _FreeScores, left: torch.Tensor, k: int, exact_rows: int, chunk_rows: int,
               exact_entries: int, max_rounds, min_progress: float, stats: FillStats) -> torch.Tensor:
    """The local column (into ``left``, free capacity per column) of every row of ``scores``: greedy passes while
    they place enough, then one exact assignment or exact chunks (the most similar rows first)."""
    n = scores.rv.shape[0]
    dev = left.device
    got = torch.full((n,), -1, dtype=torch.long, device=dev)
    rows = torch.arange(n, device=dev)
    best = torch.zeros(n, device=dev)  # similarity of each row's best free column
    while rows.numel() > exact_rows:  # greedy passes over short lists place most of them
        cand, sim = scores.topk(rows, left == 0, k)
        best[rows] = sim[:, 0]
        new = greedy_assign(cand, sim, left, max_rounds=max_rounds)
        ok = new >= 0
        got[rows[ok]] = new[ok]
        left -= torch.bincount(new[ok], minlength=left.numel())
        stats.greedy += int(ok.sum())
        placed, rows = int(ok.sum()), rows[~ok]
        if placed < min_progress * (placed + rows.numel()):  # contested: the rest goes to exact chunks
            break
    if rows.numel() and rows.numel() <= exact_rows:
        one = _exact_fill(rows, left, scores, exact_entries)
        if one is not None:
            got[rows] = one
            stats.exact += rows.numel()
            rows = rows[:0]
    if rows.numel():
        rows = rows[best[rows].argsort(descending=True, stable=True)]  # the most similar leftovers choose first
        for i in range(0, rows.numel(), chunk_rows):
            r = rows[i:i + chunk_rows]
            got[r] = _exact_fill(r, left, scores)
            left -= torch.bincount(got[r], minlength=left.numel())
            stats.chunked += r.numel()
    return got


# ------------------------------------------------------------------------------------------------ one problem
def solve(cand: torch.Tensor, sim: torch.Tensor, rule: UsageRule, n_style: int, content_vectors: torch.Tensor,
          style_vectors: torch.Tensor, labels_c: torch.Tensor | None = None, labels_s: torch.Tensor | None = None,
          top_k: int = 32, exact_rows: int = 512, max_rounds: int | None = 200, chunk_elements: int = 1 << 22,
          style_hw: tuple[int, int] | None = None, fill_probes: int = 4,
          swap_rounds: int = 2) -> tuple[torch.Tensor, FillStats, Capacity]:
    """The usage-limited assignment of one iteration: capacities, greedy pass over the candidates, fill, then
    ``swap_rounds`` rounds of exchanges along the candidate lists (:func:`swap_refine`).

    ``cand``/``sim``: ``(N, K)`` candidates of every content position (``-inf``: unusable, e.g. another label);
    ``content_vectors``/``style_vectors``: the position vectors whose dot products are the similarities (for the
    fill); ``style_hw``: the style grid (the fill then looks near each leftover's best candidate first). Content
    label -1 marks positions matched without
    the mask restriction (their label has no style region at this level): they are solved after the others,
    on a capacity of their own, so the labelled regions keep theirs. Returns the assignment, how the leftovers
    were filled and the capacities (summed over the groups).
    """
    n = cand.shape[0]
    dev = cand.device
    assign = torch.full((n,), -1, dtype=torch.long, device=dev)
    fill = FillStats()
    if rule.mode == "none":
        best = argmax_assign(cand, sim)
        ok = sim.max(dim=1).values > NEG_INF
        assign[ok] = best[ok]
        if not bool(ok.all()):  # no usable candidate (all of another label): best allowed style position
            unlimited = torch.full((n_style,), n, dtype=torch.long, device=dev)
            fill = fill_unassigned(assign, unlimited, content_vectors, style_vectors, labels_c, labels_s, k=1,
                                   exact_rows=0, chunk_elements=chunk_elements)
        fill.measure(_matched(content_vectors, style_vectors, assign, chunk_elements), ~ok)
        return assign, fill, capacities(rule, n_style, n)
    usable = sim.max(dim=1).values > NEG_INF
    first = cand.gather(1, sim.argmax(dim=1, keepdim=True)).squeeze(1)
    demand = torch.bincount(first[usable], minlength=n_style)
    if labels_c is None:
        groups = [(None, None)]  # every row (None): the candidate lists and vectors are not copied (memory)
    else:
        wild = labels_c < 0
        groups = [(g, labels_c[g]) for g in (torch.nonzero(~wild).squeeze(1),) if g.numel()]
        if bool(wild.any()):
            groups.append((torch.nonzero(wild).squeeze(1), None))
    total = torch.zeros(n_style, dtype=torch.long, device=dev)
    info: dict = {}
    by_fill = torch.zeros(n, dtype=torch.bool, device=dev)
    for rows, lab in groups:
        cap = capacities(rule, n_style, n if rows is None else rows.numel(), lab,
                         labels_s if lab is not None else None, demand, dev)
        sub = greedy_assign(_of_rows(cand, rows), _of_rows(sim, rows), cap.cap, max_rounds=max_rounds,
                            chunk_elements=chunk_elements)
        if rows is None:
            by_fill = sub < 0
        else:
            by_fill[rows] = sub < 0
        fill.add(fill_unassigned(sub, cap.cap, _of_rows(content_vectors, rows), style_vectors, lab,
                                 labels_s if lab is not None else None, k=top_k, exact_rows=exact_rows,
                                 chunk_elements=chunk_elements, max_rounds=max_rounds, hints=_of_rows(first, rows),
                                 style_hw=style_hw, probes=fill_probes))
        if rows is None:
            assign = sub
        else:
            assign[rows] = sub
        total += cap.cap
        if labels_c is not None and lab is None:
            info["unrestricted"] = cap.info["all"]
        else:
            info.update(cap.info)
    if swap_rounds:
        fill.swapped = swap_refine(assign, cand, sim, content_vectors, style_vectors,
                                   capacity=total if labels_c is None else None, labels_c=labels_c,
                                   rounds=swap_rounds, chunk_elements=chunk_elements)
    fill.measure(_matched(content_vectors, style_vectors, assign, chunk_elements), by_fill)
    return assign, fill, Capacity(total, info)


# ------------------------------------------------------------------------------------------------ refinement
def swap_refine(assign: torch.Tensor, cand: torch.Tensor, sim: torch.Tensor, content_vectors: torch.Tensor,
                style_vectors: torch.Tensor, capacity: torch.Tensor | None = None,
                labels_c: torch.Tensor | None = None, rounds: int = 4, chunk_elements: int = 1 << 22,
                min_gain: float = 1e-6) -> int:
    """Improve a complete assignment in place by exchanges along the candidate lists; returns how many were made.

    Content position ``i`` may take a candidate ``s`` of its list held by ``j`` while ``j`` takes ``i``'s style
    position (a *swap*: every usage count stays as it is), or, with ``capacity`` and ``s`` below it, move to ``s`` (a
    *move*). It does when that raises the summed similarity. The greedy pass places the best pairs first and can
    leave a pair of positions with the two worse halves of a better exchange; the fill places leftovers one by one.
    Each round every position proposes its best exchange; the exchanges that are the best for all they touch are
    made together. Swaps stay within one content label (``labels_c``: both positions then draw on the same style
    region); moves are only made without labels (each label group has a capacity of its own).
    """
    n, k = cand.shape
    n_style = style_vectors.shape[0]
    dev = assign.device
    if n < 2 or k == 0 or rounds <= 0:
        return 0
    cur = pair_scores(content_vectors, style_vectors, assign[:, None], chunk_elements=chunk_elements)[:, 0]
    step = max(1, chunk_elements // max(1, PROPOSAL_TEMPORARIES * k))
    made = 0
    for _ in range(rounds):
        holder = torch.full((n_style,), -1, dtype=torch.long, device=dev)
        holder[assign] = torch.arange(n, device=dev)  # one holder of each used style position
        room = None if capacity is None else capacity - torch.bincount(assign, minlength=n_style)
        gain = torch.full((n,), NEG_INF, dtype=cur.dtype, device=dev)
        partner = torch.full((n,), -1, dtype=torch.long, device=dev)  # -1: a move
        target = torch.full((n,), -1, dtype=torch.long, device=dev)
        for r0 in range(0, n, step):
            r = slice(r0, r0 + step)
            c, sv = cand[r], sim[r]
            j = holder[c]
            better = sv > cur[r][:, None] + min_gain
            jj = j.clamp_min(0)
            # j's similarity with i's style position: that style vector against the vectors of the js
            sj = pair_scores(style_vectors, content_vectors, jj, rows=assign[r], chunk_elements=chunk_elements)
            g = sv - cur[r][:, None] + sj - cur[jj]
            ok = better & (j >= 0)
            if labels_c is not None:
                ok &= labels_c[jj] == labels_c[r][:, None]
            if room is not None:
                free = better & (room[c] > 0)
                g = torch.where(free, sv - cur[r][:, None], g)
                ok |= free
            best, at = g.masked_fill_(~ok, NEG_INF).max(1)
            gain[r], target[r] = best, c.gather(1, at[:, None])[:, 0]
            pj = jj.gather(1, at[:, None])[:, 0]
            partner[r] = pj if room is None else torch.where(room[target[r]] > 0, -1, pj)  # room there: a move
        i = (gain > min_gain).nonzero().squeeze(1)
        if not i.numel():
            break
        g, j, s = gain[i], partner[i], target[i]
        swap = j >= 0
        # an exchange is made when it is the best proposal for each position (and, for a move, style position) in it
        top_pos = torch.full((n,), NEG_INF, dtype=g.dtype, device=dev)
        top_pos.scatter_reduce_(0, i, g, reduce="amax")
        top_pos.scatter_reduce_(0, j[swap], g[swap], reduce="amax")
        top_sty = torch.full((n_style,), NEG_INF, dtype=g.dtype, device=dev)
        top_sty.scatter_reduce_(0, s[~swap], g[~swap], reduce="amax")
        take = (g >= top_pos[i]) & torch.where(swap, (g >= top_pos[j.clamp_min(0)]) & (j != i), g >= top_sty[s])
        i, j, s, swap = i[take], j[take], s[take], swap[take]
        touched = torch.cat([i, j[swap]])  # ties: keep the exchanges whose positions appear once
        once = torch.bincount(touched, minlength=n) == 1
        moved_to = torch.bincount(s[~swap], minlength=n_style)
        keep = once[i] & torch.where(swap, once[j.clamp_min(0)], moved_to[s] == 1)
        i, j, s, swap = i[keep], j[keep], s[keep], swap[keep]
        if not i.numel():
            break
        old = assign[i].clone()
        assign[i] = s
        assign[j[swap]] = old[swap]
        cur[i] = pair_scores(content_vectors, style_vectors, s[:, None], rows=i)[:, 0]
        cur[j[swap]] = pair_scores(content_vectors, style_vectors, old[swap][:, None], rows=j[swap])[:, 0]
        made += int(i.numel())
    return made


def _of_rows(t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The rows ``rows`` of ``t`` (None: ``t`` itself, not a copy)."""
    return t if rows is None else t.index_select(0, rows)


def _matched(content_vectors, style_vectors, assign, chunk_elements) -> torch.Tensor:
    """Each position's similarity with its assigned style position (0 where none)."""
    ok = assign >= 0
    sims = pair_scores(content_vectors, style_vectors, assign.clamp_min(0)[:, None],
                       chunk_elements=chunk_elements)[:, 0]
    return sims.masked_fill(~ok, 0.0)

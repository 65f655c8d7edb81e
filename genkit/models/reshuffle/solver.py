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
**by similarity only**: a greedy pass over each leftover's most similar free style positions, then a maximum-
similarity assignment (``scipy.optimize.linear_sum_assignment``) of the rest to the free slots: in one piece when
few are left, else chunk by chunk (the most similar leftovers first), each chunk exactly. No position is placed by
grid order; every similarity is computed exactly (no subsampled search).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from genkit.errors import ConfigError

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NEG_INF = float("-inf")


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
                  max_rounds: int | None = None) -> torch.Tensor:
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
    order = sim.argsort(dim=1, descending=True, stable=True)
    cand = cand.gather(1, order)
    sim = sim.gather(1, order)
    n_style = capacity.numel()
    cols = torch.arange(k, device=dev)
    ptr = torch.zeros(n, dtype=torch.long, device=dev)
    held_c = torch.empty(0, dtype=torch.long, device=dev)
    held_s = torch.empty(0, dtype=torch.long, device=dev)
    held_v = torch.empty(0, dtype=sim.dtype, device=dev)
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
            c_free, s_free = cand[free], sim[free]
            viable = (s_free > bar[c_free]) & (cols[None, :] >= ptr[free, None])
            has = viable.any(dim=1)
            ptr[free] = torch.where(has, viable.int().argmax(dim=1), torch.full_like(ptr[free], k))
        free = free[ptr[free] < k]
        p = ptr[free]
        v = sim[free, p]
        ok = v > NEG_INF
        free, p, v = free[ok], p[ok], v[ok]
        if not free.numel():
            break
        s = cand[free, p]
        # only style positions that received proposals re-rank their pool
        touched = torch.zeros(n_style, dtype=torch.bool, device=dev)
        touched[s] = True
        in_pool = touched[held_s]
        pool_c = torch.cat([held_c[in_pool], free])
        pool_s = torch.cat([held_s[in_pool], s])
        pool_v = torch.cat([held_v[in_pool], v])
        o = pool_v.argsort(descending=True, stable=True)
        pool_c, pool_s, pool_v = pool_c[o], pool_s[o], pool_v[o]
        o = pool_s.argsort(stable=True)
        pool_c, pool_s, pool_v = pool_c[o], pool_s[o], pool_v[o]
        pos = torch.arange(pool_s.numel(), device=dev)
        first = torch.ones_like(pool_s, dtype=torch.bool)
        first[1:] = pool_s[1:] != pool_s[:-1]
        rank = pos - torch.where(first, pos, torch.zeros_like(pos)).cummax(0).values  # rank within its style group
        keep = rank < capacity[pool_s]
        held_c = torch.cat([held_c[~in_pool], pool_c[keep]])
        held_s = torch.cat([held_s[~in_pool], pool_s[keep]])
        held_v = torch.cat([held_v[~in_pool], pool_v[keep]])
        free = pool_c[~keep]
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
    """How the leftovers of the greedy pass were placed (all by similarity)."""

    filled: int = 0  # positions the fill placed
    greedy: int = 0  # ... by a greedy pass over their most similar free style positions
    exact: int = 0  # ... by one exact maximum-similarity assignment of all that were left
    chunked: int = 0  # ... by exact assignments chunk by chunk (most similar leftovers first)
    placed_without_similarity: int = 0  # positions placed without comparing similarities (always 0 here)

    def add(self, other: "FillStats") -> None:
        for k in ("filled", "greedy", "exact", "chunked", "placed_without_similarity"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


class _Scores:
    """Similarities of a fixed set of leftover rows with the style positions that had free capacity when the
    fill started (the only ones that can gain users). Held densely when small enough, else recomputed per use."""

    def __init__(self, score_fn: ScoreFn, rows: torch.Tensor, cols: torch.Tensor, chunk_elements: int):
        self.score_fn, self.rows, self.cols = score_fn, rows, cols
        self.row_index = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long, device=rows.device)
        self.row_index[rows] = torch.arange(rows.numel(), device=rows.device)
        n_style = int(cols.max()) + 1
        self.col_index = torch.full((n_style,), -1, dtype=torch.long, device=cols.device)
        self.col_index[cols] = torch.arange(cols.numel(), device=cols.device)
        self.chunk_elements = chunk_elements
        self.dense = None
        if rows.numel() * cols.numel() <= 4 * chunk_elements:
            self.dense = self._compute(rows, cols)

    def _compute(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        out = torch.empty(rows.numel(), cols.numel(), device=rows.device)
        step = max(1, self.chunk_elements // max(1, cols.numel()))
        for i in range(0, rows.numel(), step):
            out[i:i + step] = self.score_fn(rows[i:i + step], cols)
        return out

    def __call__(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        if self.dense is None:
            return self.score_fn(rows, cols)
        return self.dense[self.row_index[rows]][:, self.col_index[cols]]

    def topk(self, rows: torch.Tensor, cols: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` of ``cols`` for each of ``rows`` (global style indices), in row chunks."""
        k = min(k, cols.numel())
        cand = torch.empty(rows.numel(), k, dtype=torch.long, device=rows.device)
        sims = torch.empty(rows.numel(), k, device=rows.device)
        step = max(1, self.chunk_elements // max(1, cols.numel()))
        for i in range(0, rows.numel(), step):
            v, j = self(rows[i:i + step], cols).topk(k, dim=1)
            sims[i:i + step], cand[i:i + step] = v, cols[j]
        return cand, sims


def _exact_fill(assign: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, left: torch.Tensor,
                scores: "_Scores", max_entries: int | None = None) -> bool:
    """Maximum-total-similarity assignment of ``rows`` to the free slots of ``cols`` (``left`` uses each).

    Only each row's ``len(rows)`` most similar free positions take part (an optimal assignment never needs
    another: one of them always has a slot no other row took), each with at most ``len(rows)`` slots. Returns
    False (assigning nothing) when that problem has more than ``max_entries`` entries.
    """
    from scipy.optimize import linear_sum_assignment

    m = rows.numel()
    top = scores.topk(rows, cols, m)[0].reshape(-1).unique()
    mult = left[top].clamp_max(m)
    if max_entries is not None and m * int(mult.sum()) > max_entries:
        return False
    slot_cols = torch.repeat_interleave(top, mult)
    expand = torch.repeat_interleave(torch.arange(top.numel(), device=top.device), mult)
    matrix = scores(rows, top)[:, expand].double().cpu().numpy()
    r, c = linear_sum_assignment(matrix, maximize=True)
    assign[rows[torch.as_tensor(r, device=rows.device)]] = slot_cols[torch.as_tensor(c, device=rows.device)]
    return True


def fill_unassigned(assign: torch.Tensor, capacity: torch.Tensor, score_fn: ScoreFn,
                    labels_c: torch.Tensor | None = None, labels_s: torch.Tensor | None = None, k: int = 32,
                    exact_rows: int = 512, chunk_rows: int = 64, exact_entries: int = 1 << 21,
                    chunk_elements: int = 1 << 22, max_rounds: int | None = 50) -> FillStats:
    """Assign (in place) every ``-1`` position to free style capacity, by similarity only.

    ``score_fn(rows, cols)`` returns the dense ``(len(rows), len(cols))`` similarities. With labels, rows of label
    ``l`` only take style positions of label ``l``. More than ``exact_rows`` leftovers first get a greedy pass over
    their ``k`` most similar free style positions. The rest are assigned by maximum total similarity: in one
    piece when at most ``exact_rows`` remain (and the problem has at most ``exact_entries`` entries), else chunk by
    chunk of ``chunk_rows`` (the most similar leftovers first), each chunk exactly. Raises ``RuntimeError`` if the
    free capacity cannot hold the leftovers (the capacities guarantee it can).
    """
    stats = FillStats()
    n_style = capacity.numel()
    if not bool((assign < 0).any()):
        return stats
    groups = [None] if labels_c is None else (labels_c[assign < 0]).unique().tolist()
    for lab in groups:
        allowed = None if lab is None else labels_s == lab

        def pending() -> torch.Tensor:
            todo = assign < 0
            if lab is not None:
                todo &= labels_c == lab
            return todo.nonzero().squeeze(1)

        def free_capacity() -> torch.Tensor:
            left = (capacity - usage_counts(assign, n_style)).clamp_min(0)
            return left if allowed is None else left * allowed

        rows = pending()
        start = rows.numel()
        left = free_capacity()
        if int(left.sum()) < rows.numel():
            raise RuntimeError("usage capacity exhausted while filling; this is a bug")
        cols = (left > 0).nonzero().squeeze(1)
        scores = _Scores(score_fn, rows, cols, chunk_elements)
        if rows.numel() > exact_rows:  # one greedy pass over short lists places most of them
            cand, sim = scores.topk(rows, cols, k)
            new = greedy_assign(cand, sim, left, max_rounds=max_rounds)
            assign[rows] = new
            stats.greedy += int((new >= 0).sum())
            rows, left = pending(), free_capacity()
            cols = (left > 0).nonzero().squeeze(1)
        if rows.numel() and rows.numel() <= exact_rows and _exact_fill(assign, rows, cols, left, scores,
                                                                       exact_entries):
            stats.exact += rows.numel()
        elif rows.numel():
            best = scores.topk(rows, cols, 1)[1][:, 0]
            rows = rows[best.argsort(descending=True, stable=True)]  # the most similar leftovers choose first
            for i in range(0, rows.numel(), chunk_rows):
                r = rows[i:i + chunk_rows]
                _exact_fill(assign, r, (left > 0).nonzero().squeeze(1), left, scores)
                stats.chunked += r.numel()
                left -= torch.bincount(assign[r], minlength=n_style)
        stats.filled += start
    return stats


# ------------------------------------------------------------------------------------------------ one problem
def solve(cand: torch.Tensor, sim: torch.Tensor, rule: UsageRule, n_style: int, score_fn: ScoreFn,
          labels_c: torch.Tensor | None = None, labels_s: torch.Tensor | None = None, top_k: int = 32,
          exact_rows: int = 512, max_rounds: int | None = 200,
          chunk_elements: int = 1 << 22) -> tuple[torch.Tensor, FillStats, Capacity]:
    """The usage-limited assignment of one iteration: capacities, greedy pass over the candidates, fill.

    ``cand``/``sim``: ``(N, K)`` candidates of every content position (``-inf``: unusable, e.g. another label);
    ``score_fn(rows, cols)``: dense similarities for the fill. Content label -1 marks positions matched without
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
            fill = fill_unassigned(assign, unlimited, score_fn, labels_c, labels_s, k=1, exact_rows=0,
                                   chunk_elements=chunk_elements)
        return assign, fill, capacities(rule, n_style, n)
    usable = sim.max(dim=1).values > NEG_INF
    first = cand.gather(1, sim.argmax(dim=1, keepdim=True)).squeeze(1)
    demand = torch.bincount(first[usable], minlength=n_style)
    if labels_c is None:
        groups = [(torch.arange(n, device=dev), None)]
    else:
        wild = labels_c < 0
        groups = [(g, labels_c[g]) for g in (torch.nonzero(~wild).squeeze(1),) if g.numel()]
        if bool(wild.any()):
            groups.append((torch.nonzero(wild).squeeze(1), None))
    total = torch.zeros(n_style, dtype=torch.long, device=dev)
    info: dict = {}
    for rows, lab in groups:
        cap = capacities(rule, n_style, rows.numel(), lab, labels_s if lab is not None else None, demand, dev)
        sub = greedy_assign(cand[rows], sim[rows], cap.cap, max_rounds=max_rounds)
        fill.add(fill_unassigned(sub, cap.cap, lambda r, c, rows=rows: score_fn(rows[r], c), lab,
                                 labels_s if lab is not None else None, k=top_k, exact_rows=exact_rows,
                                 chunk_elements=chunk_elements, max_rounds=max_rounds))
        assign[rows] = sub
        total += cap.cap
        if labels_c is not None and lab is None:
            info["unrestricted"] = cap.info["all"]
        else:
            info.update(cap.info)
    return assign, fill, Capacity(total, info)

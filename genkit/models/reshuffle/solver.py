"""Constrained assignment: every content position gets one style position, no style position more than its
capacity (the usage limit).

:func:`greedy_assign` computes exactly the result of one global greedy pass over all candidate pairs sorted by
similarity (accept a pair while the content position is free and the style position has capacity left), the
solver the design notes measured to work. It is run as deferred acceptance: content positions propose down
their candidate lists, each style position holds its best ``capacity`` proposals and rejects the rest. With
preferences that come from one shared similarity, the stable matching this produces is unique and equals the
greedy one, and every round is a handful of vectorised sorts instead of a Python loop over pairs.

:func:`fill_unassigned` then gives the leftover positions (all their candidates were full) the most similar
style positions that still have capacity, so the limit holds exactly; the total capacity covers all content
positions, so this always completes.
"""

from __future__ import annotations

from typing import Callable

import torch

from genkit.errors import ConfigError

TopkFn = Callable[[torch.Tensor, torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor]"]


def greedy_assign(cand: torch.Tensor, sim: torch.Tensor, capacity: torch.Tensor,
                  max_rounds: int | None = None) -> torch.Tensor:
    """Capacity-limited greedy matching over candidate lists.

    ``cand``/``sim``: ``(N, K)`` style indices and similarities (``-inf`` marks an unusable candidate);
    ``capacity``: ``(N_style,)`` how often each style position may still be used. Returns ``(N,)`` style
    indices, ``-1`` where a content position got none of its candidates.
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
    ptr = torch.zeros(n, dtype=torch.long, device=dev)
    held_c = torch.empty(0, dtype=torch.long, device=dev)
    held_s = torch.empty(0, dtype=torch.long, device=dev)
    held_v = torch.empty(0, dtype=sim.dtype, device=dev)
    free = torch.arange(n, device=dev)
    rounds = 0
    while free.numel() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        free = free[ptr[free] < k]
        p = ptr[free]
        v = sim[free, p]
        ok = v > float("-inf")
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


def capacities(limit_for: Callable[[int, int], int | None], n_style: int, n_content: int,
               labels_c: torch.Tensor | None = None, labels_s: torch.Tensor | None = None,
               device=None) -> tuple[torch.Tensor | None, dict]:
    """Per-style-position capacity (``None``: unconstrained) and the limit used per label.

    ``limit_for(n_content, n_style)`` gives the usage limit for a region; with labels each label gets its own
    (content positions of label ``l`` may only use style positions of label ``l``).
    """
    if labels_c is None:
        limit = limit_for(n_content, n_style)
        if limit is None:
            return None, {"all": None}
        if limit * n_style < n_content:
            raise ConfigError(f"max_usage={limit} is too small: {n_style} style positions x {limit} < "
                              f"{n_content} content positions (raise max_usage or use 'auto')")
        return torch.full((n_style,), limit, dtype=torch.long, device=device), {"all": limit}
    cap = torch.zeros(n_style, dtype=torch.long, device=device)
    limits = {}
    c_labels, c_counts = labels_c.unique(return_counts=True)
    s_labels, s_counts = labels_s.unique(return_counts=True)
    s_count = dict(zip(s_labels.tolist(), s_counts.tolist()))
    for lab, nc in zip(c_labels.tolist(), c_counts.tolist()):
        ns = s_count.get(lab, 0)
        if ns == 0:
            raise ConfigError(f"content mask label {lab} has no region in the style mask at this level "
                              f"(style labels: {sorted(s_count)}); every content label needs a style region")
        limit = limit_for(nc, ns)
        limits[lab] = limit
        if limit is not None and limit * ns < nc:
            raise ConfigError(f"max_usage={limit} is too small for label {lab}: {ns} style positions x {limit} < {nc}")
    if any(v is None for v in limits.values()):
        return None, limits
    for lab, limit in limits.items():
        cap[labels_s == lab] = limit
    return cap, limits


def morton(idx: torch.Tensor, width: int) -> torch.Tensor:
    """Z-order code of flat grid indices: sorting by it keeps 2-D neighbours mostly together."""
    y, x = idx // width, idx % width

    def spread(v: torch.Tensor) -> torch.Tensor:
        v = v & 0xFFFF
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        return (v | (v << 1)) & 0x55555555

    return (spread(y) << 1) | spread(x)


def fill_unassigned(assign: torch.Tensor, capacity: torch.Tensor, topk_fn: TopkFn, labels_c: torch.Tensor | None = None,
                    labels_s: torch.Tensor | None = None, style_width: int | None = None, k: int = 32,
                    max_attempts: int = 8, min_progress: float = 0.1, max_pairs: int = 1 << 26,
                    max_rounds: int | None = 50, generator: torch.Generator | None = None) -> int:
    """Assign (in place) every ``-1`` position to its most similar style positions with capacity left.

    ``topk_fn(rows, cols, k)`` returns the top-k candidates of content ``rows`` among style ``cols`` (global indices,
    same-label restriction applied by the caller). Each attempt searches only the style positions that still
    have capacity and runs the greedy solver on them (when leftovers x free columns exceed ``max_pairs``, a
    random subset of the free columns is searched). Attempts stop when one fills less than ``min_progress`` of
    what is left (e.g. when all leftovers want the same few style patches). The rest is paired with the free
    slots in the Z-order of the style grid, each leftover placed near its best (taken) match, so the usage limit
    always holds exactly. Returns the number of positions filled.
    """
    n_style = capacity.numel()
    start = int((assign < 0).sum())
    if start == 0:
        return 0
    hint = torch.zeros_like(assign)  # best style position seen for each leftover
    for _ in range(max_attempts):
        rows = (assign < 0).nonzero().squeeze(1)
        if rows.numel() == 0:
            return start
        left = capacity - usage_counts(assign, n_style)
        cols = (left > 0).nonzero().squeeze(1)
        if rows.numel() * cols.numel() > max_pairs:
            keep = max(max_pairs // rows.numel(), 1)
            cols = cols[torch.randperm(cols.numel(), generator=generator)[:keep].to(cols.device)].sort().values
        cand, sim = topk_fn(rows, cols, min(cols.numel(), k))
        usable = sim[:, 0] > float("-inf")
        hint[rows[usable]] = cand[usable, 0]
        new = greedy_assign(cand, sim, left, max_rounds=max_rounds)
        assign[rows] = new
        if int((new >= 0).sum()) < min_progress * rows.numel():
            break
    rows = (assign < 0).nonzero().squeeze(1)
    if rows.numel():
        left = capacity - usage_counts(assign, n_style)
        groups = [(rows, torch.ones(n_style, dtype=torch.bool, device=rows.device))] if labels_c is None else [
            (rows[labels_c[rows] == lab], labels_s == lab) for lab in labels_c[rows].unique().tolist()]
        for r, allowed in groups:
            slots = torch.repeat_interleave(torch.arange(n_style, device=r.device), left * allowed)
            if slots.numel() < r.numel():  # cannot happen when capacities() accepted the problem
                raise RuntimeError("usage capacity exhausted while filling; this is a bug")
            if style_width:  # pair leftovers and free slots in Z-order: each lands near its best match
                r = r[morton(hint[r], style_width).argsort(stable=True)]
                slots = slots[morton(slots, style_width).argsort(stable=True)]
                take = torch.linspace(0, slots.numel() - 1, r.numel(), device=r.device).round().long()
                assign[r] = slots[take]
            else:
                assign[r] = slots[:r.numel()]
    return start

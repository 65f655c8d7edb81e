"""The usage-limited assignment solver: equals the global greedy pass, fills exactly, respects labels."""

from __future__ import annotations

import math

import pytest
import torch

from genkit.core.errors import ConfigError
from genkit.models.reshuffle.matching import dense_topk
from genkit.models.reshuffle.solver import (UsageRule, argmax_assign, capacities, fill_unassigned, greedy_assign,
                                            solve, split_capacity, swap_refine, usage_counts)

pytestmark = pytest.mark.usefixtures("one_thread")

def sequential_greedy(cand: torch.Tensor, sim: torch.Tensor, capacity: torch.Tensor) -> torch.Tensor:
    """Reference: one pass over all pairs sorted by similarity, accepted while both sides allow."""
    n, k = cand.shape
    order = torch.argsort(sim.flatten(), descending=True).tolist()
    flat_c, flat_v = cand.flatten().tolist(), sim.flatten().tolist()
    left = capacity.tolist()
    out = [-1] * n
    for e in order:
        if flat_v[e] == float("-inf"):
            break
        c, s = e // k, flat_c[e]
        if out[c] == -1 and left[s] > 0:
            out[c] = s
            left[s] -= 1
    return torch.tensor(out)


@pytest.mark.parametrize("n,n_style,k,cap", [(40, 40, 4, 1), (120, 50, 6, 3), (300, 100, 8, 3), (200, 300, 5, 1)])
def test_greedy_equals_sequential_reference(n, n_style, k, cap):
    g = torch.Generator().manual_seed(n + k)
    for _ in range(3):
        cand = torch.randint(0, n_style, (n, k), generator=g)
        sim = torch.rand(n, k, generator=g)  # distinct values: the greedy result is unique
        sim[torch.rand(n, k, generator=g) < 0.1] = float("-inf")  # unusable candidates are skipped
        capacity = torch.full((n_style,), cap)
        got = greedy_assign(cand, sim, capacity)
        assert torch.equal(got, sequential_greedy(cand, sim, capacity))
        assert usage_counts(got, n_style).max() <= cap
        # rounds that go row chunk by row chunk (bounded temporaries on large maps) give the same result
        assert torch.equal(greedy_assign(cand, sim, capacity, chunk_elements=3 * k), got)
        # lists that come sorted (as a top-k gives them) are used as they are
        order = sim.argsort(dim=1, descending=True, stable=True)
        assert torch.equal(greedy_assign(cand.gather(1, order), sim.gather(1, order), capacity), got)


def test_fill_makes_limit_exact_and_complete():
    g = torch.Generator().manual_seed(0)
    n, n_style, cap = 500, 250, 2
    ec = torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=1)
    es = torch.nn.functional.normalize(torch.randn(n_style, 8, generator=g), dim=1)
    cand, sim = dense_topk(ec, es, 3)  # very short lists: many positions are left over
    capacity = torch.full((n_style,), cap)
    assign = greedy_assign(cand, sim, capacity)
    left_over = int((assign < 0).sum())
    assert left_over > 50
    for exact_rows in (0, 10_000):  # greedy passes only / exact assignment
        a = assign.clone()
        stats = fill_unassigned(a, capacity, ec, es, k=2, exact_rows=exact_rows, exact_entries=1 << 30)
        assert stats.filled == left_over
        assert stats.greedy + stats.exact + stats.chunked == left_over
        assert (stats.exact == left_over) == bool(exact_rows)
        assert (a >= 0).all()
        counts = usage_counts(a, n_style)
        assert counts.max() <= cap and counts.sum() == n
        assert int((counts == cap).sum()) == n_style  # cap * n_style == n: every slot is used


def test_fill_takes_the_most_similar_free_position():
    ec = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    es = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.2]])
    capacity = torch.ones(3, dtype=torch.long)
    for exact_rows in (0, 8):
        assign = torch.tensor([0, -1])  # style 0 is taken; row 1 must get style 2 (more similar than 1)
        fill_unassigned(assign, capacity, ec, es, exact_rows=exact_rows)
        assert assign.tolist() == [0, 2]


def test_fill_without_probes_goes_straight_to_the_dense_passes():
    """``fill_probes=0`` (the search benchmark's exact reference): no pass near the hints, window or random."""
    g = torch.Generator().manual_seed(3)
    hw = (16, 16)
    n = hw[0] * hw[1]
    ec = torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=1)
    es = torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=1)
    cand, sim = dense_topk(ec, es, 2)
    capacity = torch.ones(n, dtype=torch.long)
    assign = greedy_assign(cand, sim, capacity)
    hints = cand[:, 0]
    for probes in (4, 0):
        a = assign.clone()
        stats = fill_unassigned(a, capacity, ec, es, k=4, exact_rows=0, hints=hints, style_hw=hw, probes=probes)
        assert sorted(a.tolist()) == list(range(n))
        assert (stats.local > 0) == bool(probes), (probes, stats)


def contested(n: int, seed: int):
    """Similarities where every row ranks the style positions almost alike (a shared popularity), plus a small
    row-specific part: greedy top-k passes stall, and with slack 1 (every slot used once) the popularity sums
    to a constant, so only the row-specific part decides how good an assignment is."""
    g = torch.Generator().manual_seed(seed)
    popularity = torch.linspace(1.0, 0.0, n)[torch.randperm(n, generator=g)]
    own = torch.rand(n, n, generator=g)
    return popularity[None, :] + 0.05 * own, own


def test_leftovers_are_placed_by_similarity_not_grid_order():
    from scipy.optimize import linear_sum_assignment

    n = 300
    sim, own = contested(n, 4)
    capacity = torch.ones(n, dtype=torch.long)
    best_r, best_c = linear_sum_assignment(own.numpy(), maximize=True)
    best = float(own[best_r, best_c].mean())
    position_order = float(own[torch.arange(n), torch.arange(n)].mean())  # ~ any placement that ignores it
    for exact_rows, floor in ((n, 0.999), (0, 0.9)):  # one exact assignment / greedy pass + exact chunks
        assign = torch.full((n,), -1, dtype=torch.long)
        # any similarity matrix is a product of vectors: rows of the matrix with one-hot style vectors
        stats = fill_unassigned(assign, capacity, sim, torch.eye(n), k=4, exact_rows=exact_rows,
                                exact_entries=1 << 30, chunk_rows=32)
        assert sorted(assign.tolist()) == list(range(n))  # the limit (1) holds exactly
        assert stats.filled == n
        got = float(own[torch.arange(n), assign].mean())
        assert got >= floor * best, (got, best)
        assert got > position_order + 0.25, (got, position_order)


def test_fill_and_capacities_with_labels():
    g = torch.Generator().manual_seed(2)
    labels_c = torch.tensor([0] * 30 + [1] * 10)
    labels_s = torch.tensor([0] * 10 + [1] * 10)
    cap = capacities(UsageRule("auto"), 20, 40, labels_c, labels_s)
    assert cap.limit == {0: 3, 1: 1}
    assert cap.cap.tolist() == [3] * 10 + [1] * 10
    ec, es = torch.randn(40, 4, generator=g), torch.randn(20, 4, generator=g)
    for exact_rows in (0, 100):
        assign = torch.full((40,), -1, dtype=torch.long)
        fill_unassigned(assign, cap.cap, ec, es, labels_c, labels_s, k=1, exact_rows=exact_rows)
        assert torch.equal(labels_s[assign], labels_c)
        assert (usage_counts(assign, 20) <= cap.cap).all()


def test_capacities_reject_impossible_limits():
    with pytest.raises(ConfigError, match="too small"):
        capacities(UsageRule("fixed", limit=1), 10, 20)
    with pytest.raises(ConfigError, match="too small for label 0"):
        capacities(UsageRule("fixed", limit=1), 4, 6, torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]))
    cap = capacities(UsageRule("none"), 10, 20)
    assert cap.cap is None and cap.limit is None


@pytest.mark.parametrize("n_content,n_style,slack", [(100, 100, 1.25), (100, 100, 2.0), (1000, 300, 1.0),
                                                     (1000, 300, 1.25), (37, 100, 1.0), (64, 48, 1.7)])
def test_fractional_capacities_have_exact_totals(n_content, n_style, slack):
    cap = capacities(UsageRule("auto", slack=slack), n_style, n_content)
    total = max(n_content, math.ceil(slack * n_content - 1e-9))
    q = total / n_style
    assert int(cap.cap.sum()) == total  # exact, not n_style * ceil(q)
    assert set(cap.cap.unique().tolist()) <= {math.floor(q), math.ceil(q)}
    assert cap.info["all"]["total"] == total and cap.limit == math.ceil(q - 1e-9)


def test_slack_is_not_rounded_up_to_an_integer_limit():
    a = capacities(UsageRule("auto", slack=1.25), 100, 100).cap
    b = capacities(UsageRule("auto", slack=2.0), 100, 100).cap
    assert int(a.sum()) == 125 and int(b.sum()) == 200
    assert int((a == 2).sum()) == 25 and int((a == 1).sum()) == 75


def test_extra_capacity_goes_to_the_most_wanted_positions():
    demand = torch.tensor([0, 5, 1, 9, 0, 2])
    cap = split_capacity(6, 8, demand)  # 1 each, plus 2 extra units
    assert cap.tolist() == [1, 2, 1, 2, 1, 1]
    even = split_capacity(6, 9)  # no demand: spread out
    assert int(even.sum()) == 9 and even.tolist() == [2, 1, 2, 1, 2, 1]


def test_argmax_assign_is_unconstrained_best():
    cand = torch.tensor([[3, 1, 2], [0, 0, 1]])
    sim = torch.tensor([[0.1, 0.9, 0.2], [0.5, 0.4, 0.7]])
    assert argmax_assign(cand, sim).tolist() == [1, 1]


def test_swaps_undo_what_the_greedy_pass_gets_wrong():
    """Greedy takes the best pair (0 -> a, 0.9) and leaves 1 with b (0.0); 0 -> b (0.8) and 1 -> a (0.85) is better."""
    ec = torch.eye(2)
    es = torch.tensor([[0.9, 0.85], [0.8, 0.0]])  # columns: content 0, 1; rows: style a, b
    cand = torch.tensor([[0, 1], [0, 1]])
    sim = ec @ es.T
    sim = sim.gather(1, cand)
    assign = greedy_assign(cand, sim, torch.ones(2, dtype=torch.long))
    assert assign.tolist() == [0, 1]
    assert swap_refine(assign, cand, sim, ec, es) == 1
    assert assign.tolist() == [1, 0]  # 0.8 + 0.85 instead of 0.9 + 0.0


@pytest.mark.parametrize("slack", [1.0, 1.5])
def test_swaps_keep_the_usage_and_only_raise_the_similarity(slack):
    g = torch.Generator().manual_seed(7)
    n, n_style = 400, 200
    ec = torch.nn.functional.normalize(torch.randn(n, 6, generator=g), dim=1)
    es = torch.nn.functional.normalize(torch.randn(n_style, 6, generator=g), dim=1)
    cand, sim = dense_topk(ec, es, 8)
    rule = UsageRule("auto", slack=slack)
    plain, _, cap = solve(cand, sim, rule, n_style, ec, es, top_k=8, swap_rounds=0)
    refined, fill, cap2 = solve(cand, sim, rule, n_style, ec, es, top_k=8, swap_rounds=4)
    assert torch.equal(cap.cap, cap2.cap) and fill.swapped > 0
    used = usage_counts(refined, n_style)
    assert (used <= cap.cap).all() and (refined >= 0).all()
    if slack == 1.0:  # every slot is used: swaps keep every usage count
        assert torch.equal(used, usage_counts(plain, n_style))
    total = lambda a: float((ec * es[a]).sum())  # noqa: E731
    assert total(refined) > total(plain) + 0.1
    # each exchange raised the sum: a refinement that starts from the result makes none it would regret
    again = refined.clone()
    swap_refine(again, cand, sim, ec, es, capacity=cap.cap, rounds=4)
    assert total(again) >= total(refined) - 1e-4


def test_swaps_stay_within_a_content_label():
    g = torch.Generator().manual_seed(8)
    n = 120
    ec = torch.nn.functional.normalize(torch.randn(n, 5, generator=g), dim=1)
    es = torch.nn.functional.normalize(torch.randn(n, 5, generator=g), dim=1)
    labels_c = (torch.arange(n) >= n // 2).long()
    labels_s = labels_c.clone()
    cand, sim = dense_topk(ec, es, 6, labels_c=labels_c, labels_s=labels_s)
    assign, fill, _ = solve(cand, sim, UsageRule("auto"), n, ec, es, labels_c=labels_c, labels_s=labels_s,
                            top_k=6, swap_rounds=4)
    assert fill.swapped > 0
    assert torch.equal(labels_s[assign], labels_c)  # every position still holds a style position of its label
    assert sorted(assign.tolist()) == list(range(n))

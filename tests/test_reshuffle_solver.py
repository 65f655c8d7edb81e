"""The usage-limited assignment solver: equals the global greedy pass, fills exactly, respects labels."""

from __future__ import annotations

import pytest
import torch

from genkit.errors import ConfigError
from genkit.models.reshuffle.matching import dense_topk
from genkit.models.reshuffle.solver import (argmax_assign, capacities, fill_unassigned, greedy_assign,
                                            usage_counts)

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
    filled = fill_unassigned(assign, capacity, lambda r, c, kk: dense_topk(ec, es, kk, rows=r, cols=c), k=2)
    assert filled == left_over
    assert (assign >= 0).all()
    counts = usage_counts(assign, n_style)
    assert counts.max() <= cap and counts.sum() == n
    assert int((counts == cap).sum()) == n_style  # cap * n_style == n: every slot is used


def test_fill_takes_the_most_similar_free_position():
    ec = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    es = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.2]])
    capacity = torch.ones(3, dtype=torch.long)
    assign = torch.tensor([0, -1])  # style 0 is taken; row 1 must get style 2 (more similar than 1)
    fill_unassigned(assign, capacity, lambda r, c, kk: dense_topk(ec, es, kk, rows=r, cols=c))
    assert assign.tolist() == [0, 2]


def test_fill_with_a_subsampled_search_still_respects_the_limit():
    g = torch.Generator().manual_seed(1)
    n = n_style = 300
    ec, es = torch.randn(n, 4, generator=g), torch.randn(n_style, 4, generator=g)
    assign = torch.full((n,), -1, dtype=torch.long)
    capacity = torch.ones(n_style, dtype=torch.long)
    fill_unassigned(assign, capacity, lambda r, c, kk: dense_topk(ec, es, kk, rows=r, cols=c), k=1, max_pairs=2000,
                    generator=g)
    assert sorted(assign.tolist()) == list(range(n))  # a permutation: limit 1 held exactly


def test_fill_and_capacities_with_labels():
    g = torch.Generator().manual_seed(2)
    labels_c = torch.tensor([0] * 30 + [1] * 10)
    labels_s = torch.tensor([0] * 10 + [1] * 10)
    cap, limits = capacities(lambda nc, ns: -(-nc // ns), 20, 40, labels_c, labels_s)
    assert limits == {0: 3, 1: 1}
    assert cap.tolist() == [3] * 10 + [1] * 10
    ec, es = torch.randn(40, 4, generator=g), torch.randn(20, 4, generator=g)

    def topk(r, c, kk):
        return dense_topk(ec, es, kk, rows=r, cols=c, labels_c=labels_c, labels_s=labels_s)

    assign = torch.full((40,), -1, dtype=torch.long)
    fill_unassigned(assign, cap, topk, labels_c, labels_s, k=1)
    assert torch.equal(labels_s[assign], labels_c)
    assert (usage_counts(assign, 20) <= cap).all()


def test_capacities_reject_impossible_limits():
    with pytest.raises(ConfigError, match="too small"):
        capacities(lambda nc, ns: 1, 10, 20)
    with pytest.raises(ConfigError, match="label 2"):
        capacities(lambda nc, ns: 1, 4, 4, torch.tensor([0, 0, 2, 2]), torch.tensor([0, 0, 1, 1]))
    cap, limits = capacities(lambda nc, ns: None, 10, 20)
    assert cap is None and limits == {"all": None}


def test_argmax_assign_is_unconstrained_best():
    cand = torch.tensor([[3, 1, 2], [0, 0, 1]])
    sim = torch.tensor([[0.1, 0.9, 0.2], [0.5, 0.4, 0.7]])
    assert argmax_assign(cand, sim).tolist() == [1, 1]


def test_fill_falls_back_to_nearby_free_slots_when_everyone_wants_the_same_patch():
    hs = ws = 8
    n = hs * ws
    ec = torch.ones(n, 4)  # every content position is identical: all prefer the same style patches
    es = torch.nn.functional.normalize(torch.randn(n, 4, generator=torch.Generator().manual_seed(3)), dim=1)
    assign = torch.full((n,), -1, dtype=torch.long)
    capacity = torch.ones(n, dtype=torch.long)
    filled = fill_unassigned(assign, capacity, lambda r, c, kk: dense_topk(ec, es, kk, rows=r, cols=c),
                             style_width=ws, k=4, max_attempts=8, min_progress=0.5)
    assert filled == n
    assert sorted(assign.tolist()) == list(range(n))  # the limit (1) holds exactly


def test_morton_order_keeps_neighbours_together():
    from genkit.models.reshuffle.solver import morton

    idx = torch.arange(16)
    codes = morton(idx, 4)
    assert sorted(codes.tolist()) == list(range(16))
    order = idx[codes.argsort()].tolist()
    assert order[:4] == [0, 1, 4, 5]  # the top-left 2x2 block comes first

"""Matching representation, global/local candidate search, voting: against brute-force references."""

from __future__ import annotations

import pytest
import torch

from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
from genkit.models.reshuffle.features import MatchSpace
from genkit.models.reshuffle.level import reshuffle_level
from genkit.models.reshuffle.matching import (dense_topk, local_candidates, mask_duplicates, pair_scores, search_radii,
                                              upsample_assignment)
from genkit.models.reshuffle.voting import vote

pytestmark = pytest.mark.usefixtures("one_thread")



def features(c, h, w, seed):
    return torch.relu(torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed)))


def brute_patch_cosine(fc: torch.Tensor, fs: torch.Tensor, p: int) -> torch.Tensor:
    """Explicit loops: the cosine of every pair of p x p patches of position-normalised features (zero outside
    the map)."""
    r = p // 2

    def patches(f):
        f = f / f.norm(dim=0, keepdim=True).clamp_min(1e-8)
        c, h, w = f.shape
        out = []
        for y in range(h):
            for x in range(w):
                v = torch.zeros(c, p, p)
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            v[:, dy + r, dx + r] = f[:, y + dy, x + dx]
                out.append(v.flatten() / v.norm().clamp_min(1e-12))
        return torch.stack(out)

    return patches(fc) @ patches(fs).T


@pytest.mark.parametrize("p", [1, 3, 5])
def test_embedding_equals_explicit_patches_and_chunking_is_invisible(p):
    fc, fs = features(6, 7, 9, 0), features(6, 8, 6, 1)
    space = MatchSpace.fit(fc, fs, p)
    sim = space.embed(fc) @ space.embed(fs).T
    torch.testing.assert_close(sim, brute_patch_cosine(fc, fs, p), atol=1e-5, rtol=1e-5)
    tiny_chunks = MatchSpace(p, chunk_elements=50)  # one row band at a time
    torch.testing.assert_close(tiny_chunks.embed(fc), space.embed(fc))


def unfolded_patches(g: torch.Tensor) -> torch.Tensor:
    """(D, H, W) -> (H*W, D*p*p) zero-padded 3x3 patch vectors in ``F.unfold`` order: the reference layout."""
    return torch.nn.functional.unfold(g[None], 3, padding=1)[0].T


def test_sampled_patch_rows_agree_with_embed():
    f = features(4, 6, 5, 2)
    space = MatchSpace(3)
    emb = space.embed(f)
    ys, xs = torch.tensor([0, 2, 5, 5]), torch.tensor([0, 3, 4, 1])
    from genkit.models.reshuffle.features import normalize_positions, normalize_rows

    torch.testing.assert_close(normalize_rows(space._patch_rows(f, ys, xs)), emb[ys * 5 + xs])
    torch.testing.assert_close(space._patch_rows(f, ys, xs), unfolded_patches(normalize_positions(f))[ys * 5 + xs])


@pytest.mark.parametrize("pca_dims,patch_dims", [(24, 120), (24, None), (None, 120)])
def test_pca_projections_keep_true_cosines(pca_dims, patch_dims):
    fc, fs = features(32, 10, 10, 3), features(32, 10, 10, 4)
    exact = MatchSpace.fit(fc, fs, 3)
    approx = MatchSpace.fit(fc, fs, 3, pca_dims=pca_dims, patch_dims=patch_dims)
    ec = approx.embed(fc)
    # renormalised after every projection: a patch compared with itself scores exactly 1 (a true cosine)
    torch.testing.assert_close(ec.norm(dim=1), torch.ones(ec.shape[0]))
    s_exact = exact.embed(fc) @ exact.embed(fs).T
    s_approx = ec @ approx.embed(fs).T
    assert torch.corrcoef(torch.stack([s_exact.flatten(), s_approx.flatten()]))[0, 1] > 0.95
    assert (s_exact - s_approx).abs().mean() < 0.05
    assert approx.describe(32)  # the approximation is named in the metadata


def test_assigned_patch_cosine_is_the_true_full_dimensional_cosine():
    from genkit.models.reshuffle.features import assigned_patch_cosine

    fc, fs = features(6, 7, 9, 0), features(6, 8, 6, 1)
    assign = torch.randint(0, 48, (63,), generator=torch.Generator().manual_seed(0))
    for p in (1, 3, 5):
        ref = brute_patch_cosine(fc, fs, p)[torch.arange(63), assign]
        torch.testing.assert_close(assigned_patch_cosine(fc, fs, assign, p, chunk_elements=40), ref)
    ident = assigned_patch_cosine(fs, fs, torch.arange(48), 5)
    torch.testing.assert_close(ident, torch.ones(48))  # a perfect match scores 1, not ~0.94


def test_chunked_and_unchunked_global_search_agree():
    g = torch.Generator().manual_seed(5)
    ec, es = torch.randn(300, 16, generator=g), torch.randn(200, 16, generator=g)
    labels_c, labels_s = torch.randint(0, 3, (300,), generator=g), torch.randint(0, 3, (200,), generator=g)
    cols = torch.randperm(200, generator=g)[:120].sort().values
    rows = torch.randperm(300, generator=g)[:77]
    for kw in ({}, {"labels_c": labels_c, "labels_s": labels_s}, {"rows": rows, "cols": cols}):
        c_full, s_full = dense_topk(ec, es, 7, chunk_elements=1 << 30, **kw)
        c_chunk, s_chunk = dense_topk(ec, es, 7, chunk_elements=250, **kw)  # one row per block
        assert torch.equal(c_full, c_chunk)
        torch.testing.assert_close(s_full, s_chunk)
    ref = (ec @ es.T).topk(7, dim=1)
    c, s = dense_topk(ec, es, 7)
    assert torch.equal(c, ref.indices)
    cand = torch.randint(0, 200, (300, 11), generator=g)
    torch.testing.assert_close(pair_scores(ec, es, cand, chunk_elements=40), (ec @ es.T).gather(1, cand))


def test_unconstrained_mode_is_brute_force_nearest_neighbour():
    fc, fs = features(8, 9, 8, 6), features(8, 7, 10, 7)
    level = LevelConfig("relu4_1", alpha=0.5, patch_size=3, iterations=1, search="global")
    res = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level], max_usage=None, chunk_elements=64))
    expected = brute_patch_cosine(fc, fs, 3).argmax(dim=1)
    assert torch.equal(res.assign, expected)
    assert res.stats.usage_limit is None


def test_local_candidates_window_propagation_and_random():
    hc, wc, hs, ws = 4, 5, 6, 7
    assign = torch.arange(hc * wc) % (hs * ws)
    cand = local_candidates(assign, (hc, wc), (hs, ws), window=1, n_random=2, generator=torch.Generator().manual_seed(0))
    assert search_radii(7) == [3, 1] and search_radii(128) == [64, 32, 16, 8, 4, 2, 1]  # down to radius 1
    assert cand.shape == (hc * wc, 9 + 8 + 2 * 2)
    assert (cand >= 0).all() and (cand < hs * ws).all()
    assert (cand == assign[:, None]).any(dim=1).all()  # the current match stays a candidate
    # propagation: position (1, 1) gets its left neighbour's match shifted right by one
    a = assign.view(hc, wc)
    left = a[1, 0]
    shifted = (left // ws) * ws + (left % ws + 1)
    assert (cand[1 * wc + 1] == shifted).any()


def test_mask_duplicates_keeps_first_occurrence():
    cand = torch.tensor([[3, 1, 3, 1, 2]])
    sim = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5]])
    out = mask_duplicates(cand, sim)
    assert (out > float("-inf")).sum() == 3
    assert set(cand[out > float("-inf")].tolist()) == {1, 2, 3}


def test_upsample_assignment_keeps_identity_and_cell_offsets():
    ident = torch.arange(4 * 5)
    up = upsample_assignment(ident, (4, 5), (4, 5), (8, 10), (8, 10))
    assert torch.equal(up, torch.arange(8 * 10))
    swap = torch.tensor([1, 0])  # 1x2 grid, the two cells swapped
    up = upsample_assignment(swap, (1, 2), (1, 2), (2, 4), (2, 4)).view(2, 4)
    assert up[0].tolist() == [2, 3, 0, 1] and up[1].tolist() == [6, 7, 4, 5]


def brute_vote(fs: torch.Tensor, assign: torch.Tensor, hw: tuple[int, int], p: int) -> torch.Tensor:
    """Explicit loops: every content position sends its matched style patch; targets average what they get."""
    c, hs, ws = fs.shape
    hc, wc = hw
    r = p // 2
    acc, cnt = torch.zeros(c, hc, wc), torch.zeros(hc, wc)
    for i, s in enumerate(assign.tolist()):
        y, x, sy, sx = i // wc, i % wc, s // ws, s % ws
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if 0 <= y + dy < hc and 0 <= x + dx < wc and 0 <= sy + dy < hs and 0 <= sx + dx < ws:
                    acc[:, y + dy, x + dx] += fs[:, sy + dy, sx + dx]
                    cnt[y + dy, x + dx] += 1
    return acc / cnt.clamp_min(1)


@pytest.mark.parametrize("p", [1, 3, 5])
def test_vote_identity_and_permutation(p):
    fs = features(5, 6, 7, 8)
    ident = torch.arange(6 * 7)
    torch.testing.assert_close(vote(fs, ident, (6, 7), p), fs)
    perm = torch.randperm(42, generator=torch.Generator().manual_seed(0))
    if p == 1:
        torch.testing.assert_close(vote(fs, perm, (6, 7), 1), fs.reshape(5, -1)[:, perm].view(5, 6, 7))
    torch.testing.assert_close(vote(fs, perm, (6, 7), p), brute_vote(fs, perm, (6, 7), p))
    # content and style of different sizes, many-to-one matches
    many = torch.randint(0, 42, (4 * 9,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(vote(fs, many, (4, 9), p), brute_vote(fs, many, (4, 9), p))


def test_patch_descriptor_convolution_equals_projected_patches():
    fc, fs = features(12, 9, 7, 9), features(12, 8, 8, 10)
    space = MatchSpace.fit(fc, fs, 5, pca_dims=6, patch_dims=20)
    exact = MatchSpace(5, channel_basis=space.channel_basis)  # same channel PCA, full patch vectors
    from genkit.models.reshuffle.features import normalize_rows

    torch.testing.assert_close(space.embed(fc), normalize_rows(exact.embed(fc) @ space.patch_basis), atol=1e-5,
                               rtol=1e-4)


def test_fit_on_sampled_positions_equals_the_whole_map_projection(monkeypatch):
    """The bases are fitted from the sampled positions alone; the samples they are fitted on equal those of
    normalising and projecting the whole maps first (the earlier, slower way)."""
    from genkit.models.reshuffle import features as feats
    from genkit.models.reshuffle.features import _sample_positions, normalize_positions, normalize_rows

    seen = []
    real = feats._top_directions
    monkeypatch.setattr(feats, "_top_directions", lambda x, dims, seed: seen.append(x) or real(x, dims, seed))
    fc, fs = features(32, 12, 10, 3), features(32, 9, 11, 4)
    space = MatchSpace.fit(fc, fs, 3, pca_dims=12, patch_dims=40, max_samples=64)
    g = torch.Generator().manual_seed(0)
    maps = [normalize_positions(fc), normalize_positions(fs)]
    cols = [m.reshape(32, -1)[:, _sample_positions(m.shape[1] * m.shape[2], 64, g)] for m in maps]
    torch.testing.assert_close(seen[0], torch.cat(cols, 1).T)
    rows = []
    for m in maps:
        proj = normalize_positions(torch.einsum("cd,chw->dhw", space.channel_basis, m))
        pos = _sample_positions(m.shape[1] * m.shape[2], 32, g)
        rows.append(normalize_rows(unfolded_patches(proj)[pos]))
    torch.testing.assert_close(seen[1], torch.cat(rows, 0))


def test_assigned_patch_cosine_on_selected_positions():
    from genkit.models.reshuffle.features import assigned_patch_cosine

    fc, fs = features(6, 7, 9, 0), features(6, 8, 6, 1)
    assign = torch.randint(0, 48, (63,), generator=torch.Generator().manual_seed(0))
    some = torch.tensor([0, 8, 9, 31, 62])
    torch.testing.assert_close(assigned_patch_cosine(fc, fs, assign, 5, positions=some),
                               assigned_patch_cosine(fc, fs, assign, 5)[some])

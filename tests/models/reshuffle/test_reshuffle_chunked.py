"""Large maps are processed band by band and block by block (bounded temporaries): the results must equal the
one-piece computation."""

import torch

from genkit.models.reshuffle.features import MatchSpace
from genkit.models.reshuffle.matching import pair_scores, patchmatch
from genkit.models.reshuffle.voting import Voter, vote


def _maps(seed=0, c=16, hc=13, wc=11, hs=9, ws=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, hc, wc, generator=g), torch.randn(c, hs, ws, generator=g)


def test_banded_patchmatch_equals_one_piece_without_random_probes():
    fc, fs = _maps()
    space = MatchSpace.fit(fc, fs, 3, pca_dims=8, patch_dims=20)
    ec, es = space.embed(fc), space.embed(fs)
    start = torch.randint(0, 9 * 12, (13 * 11, 1), generator=torch.Generator().manual_seed(1))
    kw = dict(knn=5, sweeps=3, n_random=0)
    whole = patchmatch(ec, es, start, (13, 11), (9, 12), chunk_elements=1 << 30, **kw)
    banded = patchmatch(ec, es, start, (13, 11), (9, 12), chunk_elements=11 * 30, **kw)  # one row per band
    assert torch.equal(whole[0], banded[0])
    torch.testing.assert_close(whole[1], banded[1])
    # the kept candidates are the best found: sorted, and the first one is at least as similar as the start
    assert (whole[1][:, :-1] >= whole[1][:, 1:]).all()
    start_sim = pair_scores(ec, es, start)[:, 0]
    assert (whole[1][:, 0] >= start_sim - 1e-6).all() and (whole[1][:, 0] > start_sim + 1e-3).float().mean() > 0.5


def test_banded_embedding_equals_one_piece():
    fc, fs = _maps(2)
    space = MatchSpace.fit(fc, fs, 5, pca_dims=8, patch_dims=30, chunk_elements=1 << 30)
    whole = space.embed(fc)
    space.chunk_elements = 11 * 30  # one row per band
    torch.testing.assert_close(space.embed(fc), whole, rtol=1e-5, atol=1e-6)


def test_chunked_vote_and_blend_equal_the_whole_map_computation():
    fc, fs = _maps(3)
    g = torch.Generator().manual_seed(4)
    assign = torch.randint(0, 9 * 12, (13 * 11,), generator=g)
    other = torch.randint(0, 9 * 12, (13 * 11,), generator=g)
    for p in (1, 3):
        ref = vote(fs, assign, (13, 11), p)
        small = Voter(fs, p, block=5, chunk_elements=40)
        torch.testing.assert_close(small(assign, (13, 11)), ref)
        # with the content: lerp(content, voted, weight), in place (also into the content map itself)
        target = fc.clone()
        change = small.update(target, assign, 0.4, content=target)
        expected = torch.lerp(fc, ref, 0.4)
        torch.testing.assert_close(target, expected)
        assert abs(change - float((expected - fc).norm() / fc.norm())) < 1e-5
        kept = torch.zeros_like(fc)
        small.update(kept, assign, 0.4, content=fc)
        torch.testing.assert_close(kept, expected)
        # without it: from the previous assignment's blend to the new one's, the content's share unchanged
        change2 = small.update(target, other, 0.4, previous=assign)
        expected2 = torch.lerp(fc, vote(fs, other, (13, 11), p), 0.4)
        torch.testing.assert_close(target, expected2, rtol=1e-5, atol=1e-5)
        assert abs(change2 - float((expected2 - expected).norm() / expected.norm())) < 1e-5


def test_level_builds_its_blend_in_the_content_map_it_is_given():
    from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
    from genkit.models.reshuffle.level import reshuffle_level

    fc, fs = _maps(5, c=8, hc=12, wc=12, hs=12, ws=12)
    fc, fs = fc.relu(), fs.relu()
    level = LevelConfig.default("relu3_1", iterations=3, pca_dims=None, patch_dims=None)
    cfg = ReshuffleConfig(levels=[level], tolerance=0.0)
    kept = reshuffle_level(fc.clone(), fs, level, cfg, overwrite_content=True)  # a small map: the content is kept
    assert kept.features.data_ptr() != fc.data_ptr()
    given = fc.clone()
    ptr = given.data_ptr()
    small = ReshuffleConfig(levels=[level], tolerance=0.0, blend_in_place_above=0)
    owned = reshuffle_level(given, fs, level, small, overwrite_content=True)
    assert owned.features.data_ptr() == ptr  # one map: the blend lives in the content's storage
    assert kept.stats.iterations == owned.stats.iterations == 3
    assert torch.equal(kept.assign, owned.assign)
    torch.testing.assert_close(owned.features, kept.features, rtol=1e-5, atol=1e-6)
    # the blend keeps the content's share: alpha * content + (1 - alpha) * the vote of the final assignment
    expected = torch.lerp(fc, vote(fs, kept.assign, (12, 12), level.patch_size), 1 - level.alpha)
    torch.testing.assert_close(owned.features, expected, rtol=1e-5, atol=1e-5)


def test_a_warm_start_matches_the_blend_with_the_start_vote_and_keeps_the_content_share():
    """With ``start_assign`` the first iteration matches ``alpha*content + (1-alpha)*vote(start)``, not the content
    alone; the final blend is still ``alpha*content + (1-alpha)*vote(final)``, in a copy or in the content's map."""
    from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig
    from genkit.models.reshuffle.features import assigned_patch_cosine
    from genkit.models.reshuffle.level import reshuffle_level

    fc, fs = _maps(7, c=8, hc=12, wc=12, hs=12, ws=12)
    fc, fs = fc.relu(), fs.relu()
    start = torch.randperm(144, generator=torch.Generator().manual_seed(3))
    one = LevelConfig.default("relu3_1", iterations=1, pca_dims=None, patch_dims=None)
    first = reshuffle_level(fc.clone(), fs, one, ReshuffleConfig(levels=[one]), start_assign=start)
    warm = torch.lerp(fc, vote(fs, start, (12, 12), one.patch_size), 1 - one.alpha)
    matched = float(assigned_patch_cosine(warm, fs, first.assign, one.patch_size).mean())
    assert abs(first.stats.similarities[0] - matched) < 1e-5  # the warm blend is what was matched
    cold = reshuffle_level(fc.clone(), fs, one, ReshuffleConfig(levels=[one]))
    assert first.stats.warm_start and not cold.stats.warm_start
    assert first.stats.similarities[0] > cold.stats.similarities[0] + 0.01  # one step further along

    level = LevelConfig.default("relu3_1", iterations=3, pca_dims=None, patch_dims=None)
    kept = reshuffle_level(fc.clone(), fs, level, ReshuffleConfig(levels=[level], tolerance=0.0),
                           overwrite_content=True, start_assign=start)
    given = fc.clone()
    owned = reshuffle_level(given, fs, level, ReshuffleConfig(levels=[level], tolerance=0.0, blend_in_place_above=0),
                            overwrite_content=True, start_assign=start)
    assert owned.features.data_ptr() == given.data_ptr() and kept.features.data_ptr() != fc.data_ptr()
    assert torch.equal(kept.assign, owned.assign)
    expected = torch.lerp(fc, vote(fs, kept.assign, (12, 12), level.patch_size), 1 - level.alpha)
    torch.testing.assert_close(kept.features, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(owned.features, expected, rtol=1e-5, atol=1e-5)

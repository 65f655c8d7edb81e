"""Coarse-to-fine transfer and the Python API, at tiny sizes with random VGG weights."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from genkit.core.errors import ConfigError, DataError
from genkit.models.reshuffle import ReshuffleDecoders, Stylizer, stylize
from genkit.models.reshuffle.color import match_color, rgb_to_ycbcr
from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig, build_config
from genkit.models.reshuffle.features import assigned_patch_cosine
from genkit.models.reshuffle.level import reshuffle_level
from genkit.nn.vgg import VGG19Encoder

LEVELS = ("relu4_1", "relu3_1", "relu2_1")

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return VGG19Encoder(taps=LEVELS, weights="random")


@pytest.fixture(scope="module")
def decoders():
    torch.manual_seed(0)
    return ReshuffleDecoders(LEVELS, width=0.125)


@pytest.fixture(scope="module")
def photos():
    from genkit.data.samples import sample_photo

    return {n: sample_photo(n) for n in ("astronaut", "brick", "coffee")}


def counts_of(stats):
    return torch.bincount(stats.assignment.reshape(-1), minlength=stats.n_style)


@pytest.mark.parametrize("options", [
    {},  # auto limit, equal sizes -> 1
    {"style_size": 40, "slack": 1.5},  # fewer style positions: limit > 1
    {"max_usage": 3, "style_size": 88},
])
def test_usage_limit_holds_exactly_on_every_level(encoder, decoders, photos, options):
    st = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2, **options)
    res = st(photos["astronaut"], photos["brick"])
    assert [lv.tap for lv in res.levels] == list(LEVELS)
    for lv in res.levels:
        counts = counts_of(lv)
        limit = lv.usage_limit
        total = max(lv.n_content, math.ceil(options.get("slack", 1.0) * lv.n_content - 1e-9))
        expected = options.get("max_usage") or math.ceil(total / lv.n_style - 1e-9)
        assert limit == expected and (limit > 1) == bool(options)
        assert int(counts.max()) <= limit, lv.tap
        assert (counts <= lv.capacity.reshape(-1)).all()  # per position: floor or ceil of the quota
        assert counts.sum() == lv.n_content
        assert lv.fill_share == pytest.approx(lv.n_filled / lv.n_content)
        if lv.n_filled:  # what the fill placed is less similar than what the candidates' greedy pass placed
            assert lv.fill_similarity < lv.matched_similarity
        assert lv.max_usage == int(counts.max()) and lv.distinct_used == int((counts > 0).sum())
    assert res.image.shape == (3, 64, 64) and 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    # small maps: every level's first search is global (an exact search within max_global_pairs), then local
    assert all(lv.searches[0] == "global" and set(lv.searches[1:]) <= {"local"} for lv in res.levels)


def test_finer_levels_start_from_the_coarser_assignment_when_a_global_search_is_too_large(encoder, decoders, photos):
    """Above max_global_pairs a finer level does not search globally: it refines the coarser level's assignment,
    upsampled, by local search (never quadratic); below it, it matches afresh, as the release does every level."""
    small = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2)(photos["astronaut"], photos["brick"])
    assert [lv.searches[0] for lv in small.levels] == ["global"] * 3
    # relu4_1 at 64 px: 8x8 positions (4096 pairs); relu3_1: 16x16 (65536 pairs) is above this limit
    large = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2, max_global_pairs=4096)(
        photos["astronaut"], photos["brick"])
    assert large.levels[0].searches == ["global", "local"]
    assert all(lv.searches == ["local", "local"] for lv in large.levels[1:])
    assert all(not any("pooled" in note for note in lv.approximate) for lv in large.levels[1:])


def test_levels_that_start_from_the_coarser_assignment_warm_start_from_its_vote(encoder, decoders, photos):
    """With ``warm_start="local"`` a level refining the coarser assignment (local search) also starts its target from
    that assignment's vote: its first match is of a blend that already holds style, so it is more similar than the
    cold start's match of the content alone (the default, as the release); a level matching afresh does not, unless
    "all"."""
    kw = dict(decoder=decoders, encoder=encoder, size=64, iterations=2, max_global_pairs=4096, tolerance=0.0)
    warm = Stylizer(warm_start="local", **kw)(photos["astronaut"], photos["brick"])
    cold = Stylizer(**kw)(photos["astronaut"], photos["brick"])
    assert [lv.warm_start for lv in warm.levels] == [False, True, True]
    assert not any(lv.warm_start for lv in cold.levels)
    assert all(lv.as_dict()["warm_start"] == lv.warm_start for lv in warm.levels)
    for w, c in zip(warm.levels[1:], cold.levels[1:]):
        assert w.similarities[0] > c.similarities[0] + 0.05
    fresh = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2, warm_start="local")  # all global
    assert not any(lv.warm_start for lv in fresh(photos["astronaut"], photos["brick"]).levels)
    every = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2, warm_start="all")
    assert [lv.warm_start for lv in every(photos["astronaut"], photos["brick"]).levels] == [False, True, True]
    with pytest.raises(ConfigError, match="warm_start"):
        ReshuffleConfig(warm_start="sometimes")


def test_permutation_keeps_the_style_gram_matrix(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(photos["astronaut"]), 64, 8), "relu3_1")[0]
        fs = encoder.encode(fit_size(to_tensor(photos["brick"]), 64, 8), "relu3_1")[0]
    level = LevelConfig("relu3_1", alpha=0.0, patch_size=1, iterations=3, pca_dims=16)
    res = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level], max_usage=1))
    assert sorted(res.assign.tolist()) == list(range(fs.shape[1] * fs.shape[2]))  # a permutation

    def gram(f):
        x = f.reshape(f.shape[0], -1).double()
        return x @ x.T / x.shape[1]

    torch.testing.assert_close(gram(res.features), gram(fs), rtol=1e-5, atol=1e-6)
    # the unconstrained matching is not a permutation and changes the Gram matrix
    free = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level], max_usage=None))
    assert (gram(free.features) - gram(fs)).abs().max() > 1e-2
    assert free.stats.distinct_used < res.stats.distinct_used


def test_style_equal_to_content_gives_identity(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        f = encoder.encode(fit_size(to_tensor(photos["coffee"]), 64, 8), "relu3_1")[0]
    exact = LevelConfig("relu3_1", alpha=0.0, patch_size=3, iterations=2, pca_dims=None)
    res = reshuffle_level(f, f, exact, ReshuffleConfig(levels=[exact]))
    assert torch.equal(res.assign, torch.arange(f.shape[1] * f.shape[2]))
    torch.testing.assert_close(res.features, f)
    fast = LevelConfig.default("relu3_1", alpha=0.0, iterations=2)  # PCA descriptors: near identity
    res = reshuffle_level(f, f, fast, ReshuffleConfig(levels=[fast]))
    assert (res.assign == torch.arange(f.shape[1] * f.shape[2])).float().mean() > 0.9
    assert (res.features - f).norm() / f.norm() < 0.15


def test_alpha_one_keeps_the_content_features(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(photos["astronaut"]), 48, 8), "relu4_1")[0]
        fs = encoder.encode(fit_size(to_tensor(photos["brick"]), 48, 8), "relu4_1")[0]
    level = LevelConfig.default("relu4_1", alpha=1.0, iterations=2)
    res = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level]))
    torch.testing.assert_close(res.features, fc)


def test_unconstrained_mode_washes_out(encoder, decoders, photos):
    kw = dict(decoder=decoders, encoder=encoder, size=64, iterations=1)
    limited = Stylizer(**kw)(photos["astronaut"], photos["brick"])
    free = Stylizer(max_usage=None, **kw)(photos["astronaut"], photos["brick"])
    for a, b in zip(limited.levels, free.levels):
        assert a.distinct_fraction > b.distinct_fraction
        assert b.usage_limit is None and b.max_usage > a.max_usage


def test_semantic_masks_restrict_matching_to_same_labels(encoder, decoders, photos):
    from genkit.models.reshuffle.masks import grid_labels

    c_mask = torch.zeros(64, 64, dtype=torch.long)
    c_mask[:, 32:] = 1
    s_mask = torch.zeros(64, 64, dtype=torch.long)
    s_mask[40:] = 1  # a smaller style region for label 1
    res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2)(
        photos["astronaut"].resize((64, 64)), photos["brick"].resize((64, 64)), c_mask, s_mask)
    for lv in res.levels:
        lc = grid_labels(c_mask, lv.content_hw)
        ls = grid_labels(s_mask, lv.style_hw)
        assert torch.equal(ls[lv.assignment.reshape(-1)], lc), lv.tap
        counts = counts_of(lv)
        for lab, limit in lv.usage_limit.items():
            assert int(counts[ls == lab].max()) <= limit
    with pytest.raises(ConfigError, match="do not occur in the style mask"):
        Stylizer(decoder=decoders, encoder=encoder, size=64)(photos["astronaut"].resize((64, 64)),
                                                             photos["brick"].resize((64, 64)), c_mask + 1, s_mask)


def test_colour_preservation(encoder, decoders, photos):
    content = photos["coffee"]
    res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=1, preserve_color="luminance")(
        content, photos["brick"])
    from genkit.models.reshuffle.api import fit_size, resize, to_tensor

    c = fit_size(to_tensor(content), 64, 8)[0]  # processed at 64x40, resized to the exact 64x43 at the end
    assert tuple(res.image.shape) == (3, 43, 64)
    chroma_out, chroma_c = rgb_to_ycbcr(res.image)[1:], rgb_to_ycbcr(resize(c, (43, 64)))[1:]
    clipped = (res.image <= 0.0) | (res.image >= 1.0)
    ok = ~clipped.any(0)
    torch.testing.assert_close(chroma_out[:, ok], chroma_c[:, ok], atol=2e-3, rtol=0)
    # histogram mode: the style is recoloured to the content's colour statistics first
    s = fit_size(to_tensor(photos["brick"]), 64, 8)[0]
    moved = match_color(s, c)
    torch.testing.assert_close(moved.reshape(3, -1).mean(1), c.reshape(3, -1).mean(1), atol=0.03, rtol=0)
    res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=1, preserve_color="histogram")(content, photos["brick"])
    assert res.settings["preserve_color"] == "histogram"


def test_api_batches_pairs_and_reports_statistics(encoder, decoders, photos):
    c = torch.rand(3, 40, 56)
    out = stylize([photos["astronaut"], c], [photos["brick"], photos["coffee"]], decoder=decoders, encoder=encoder,
                  size=48, iterations=1)
    assert len(out) == 4
    assert [r.image.shape for r in out] == [(3, 48, 48), (3, 48, 48), (3, 34, 48), (3, 34, 48)]  # 40 * 48 / 56
    summary = out[0].summary()
    assert set(summary) == set(LEVELS)
    assert {"distinct_used", "max_usage", "usage_limit", "distinct_fraction", "mean_similarity"} <= set(summary["relu4_1"])
    meta = out[0].metadata()
    assert meta["random_weights"] is True and meta["settings"]["reconstruction"] == "decoder"


def test_optimisation_path_lowers_its_loss(encoder, photos):
    opt = {"steps": 6, "optimizer": "adam", "lr": 0.05, "gram_weight": 1.0, "tolerance": 0.0}
    res = stylize(photos["astronaut"], photos["brick"], optimize=opt, encoder=encoder, size=48,
                  levels=["relu4_1", "relu3_1"], iterations=1)
    # one image, solved at the end against the targets of both levels
    assert [h["stage"] for h in res.optimization] == ["relu3_1"]
    assert res.optimization[0]["iterations"] == 6 and res.optimization[0]["seconds_per_iteration"] > 0
    carried = stylize(photos["astronaut"], photos["brick"], optimize={**opt, "level_steps": 3}, encoder=encoder,
                      size=48, levels=["relu4_1", "relu3_1"], iterations=1)
    assert [(h["stage"], h["iterations"]) for h in carried.optimization] == [("relu4_1", 3), ("relu3_1", 6)]
    from genkit.models.reshuffle.optimize import OptimizationReconstructor, OptimizeSettings

    x = torch.rand(1, 3, 48, 48)
    target = {"relu4_1": torch.relu(torch.randn(1, 512, 6, 6))}
    for coarse in (0, 4):  # with and without a half-resolution solve first
        rec = OptimizationReconstructor(encoder, OptimizeSettings(steps=8, optimizer="lbfgs", coarse_steps=coarse))
        before = float(rec.loss(x, target))
        out = rec.image("relu4_1", target["relu4_1"], {"content": x, "targets": target})
        assert rec.history[-1]["final_loss"] < before and out.shape == x.shape
    # early stop: a loss that cannot fall stops after two checks, not after all the steps
    flat = OptimizeSettings(steps=100, optimizer="adam", lr=1e-9, check_every=5, tolerance=0.01)
    from genkit.models.reshuffle.optimize import minimize

    _, info = minimize(x, lambda im: (im * 0).sum() + 1.0, flat)
    assert info["stopped_early"] and info["iterations"] == 10
    # the same stop at the last evaluation of the budget is no early stop
    _, info = minimize(x, lambda im: (im * 0).sum() + 1.0, OptimizeSettings(**{**flat.to_dict(), "steps": 10}))
    assert not info["stopped_early"] and info["iterations"] == 10


def _rosenbrock(x):
    v = x.reshape(-1) * 2
    return (100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2).sum()


@pytest.mark.parametrize("steps", [1, 2, 4, 10, 12, 22, 23, 50])
def test_lbfgs_keeps_to_its_budget_of_evaluations(steps):
    """``steps`` is the exact budget (torch's L-BFGS line search takes one evaluation past ``max_eval``: 1 -> 2,
    10 -> 11), and ``stopped_early`` means the loss stopped falling before the budget was spent (at 23 the last
    check fell on the budget's last evaluation)."""
    from genkit.models.reshuffle.optimize import OptimizeSettings, minimize

    calls = []

    def loss(x):
        calls.append(1)
        return _rosenbrock(x)

    x0 = torch.full((1, 3, 4, 4), 0.1)
    x, info = minimize(x0, loss, OptimizeSettings(steps=steps))
    evaluated = len(calls) - 1  # the last call is the reported final loss, without gradient
    assert evaluated == info["iterations"] <= steps
    assert info["stopped_early"] == (evaluated < steps)
    assert info["final_loss"] == pytest.approx(float(_rosenbrock(x))) and info["final_loss"] <= float(_rosenbrock(x0))


def test_gram_transfer_baseline_moves_the_gram_matrices_to_the_style(photos):
    from genkit.metrics.style import gram_style_distance
    from genkit.models.reshuffle import gram_transfer
    from genkit.models.reshuffle.api import fit_size, to_tensor
    from genkit.nn.vgg import STYLE_TAPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        enc = VGG19Encoder(taps=STYLE_TAPS, weights="random")
    res = gram_transfer(photos["astronaut"], photos["brick"], encoder=enc, size=48,
                        optimize={"steps": 10, "tolerance": 0.0}, style_weight=10.0)
    c = fit_size(to_tensor(photos["astronaut"]), 48, 16)
    s = fit_size(to_tensor(photos["brick"]), 48, 16)
    with torch.no_grad():
        before = float(gram_style_distance(c, s, enc)[0])
        after = float(gram_style_distance(res.image[None], s, enc)[0])
    assert after < 0.8 * before
    assert res.image.shape == (3, 48, 48) and res.settings["reconstruction"] == "gram_transfer"
    assert res.optimization[0]["iterations"] == 10 and res.levels == [] and res.random_weights
    # the exact size too: processed at multiples of 16 (relu5_1), resized back (was 48x64 for size=None)
    res = gram_transfer(torch.rand(3, 45, 70), photos["brick"], encoder=enc, size=None, style_size=48,
                        optimize={"steps": 1})
    assert res.image.shape == (3, 45, 70) and res.metadata()["processing_size"] == [64, 48]


@pytest.mark.parametrize("which", ["content", "style"])
def test_gram_transfer_refuses_an_image_too_small_for_its_deepest_tap(photos, tmp_path, monkeypatch, which):
    # 20x300 px at a 48 px long side is 3x48, processed at 16x48: relu5_1 (stride 16) would see a 1x3 feature map.
    # It ran (a Gram matrix of 3 positions: a meaningless result); now it is the reshuffle path's one-line error,
    # raised before the encoder is built
    from PIL import Image

    from genkit.models.reshuffle import gram_transfer

    thin = tmp_path / "thin_20x300.png"
    photos["astronaut"].resize((20, 300)).save(thin)
    pair = {"content": photos["brick"], "style": photos["brick"], which: thin}

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder was built before the inputs were checked")

    with monkeypatch.context() as m:
        m.setattr(VGG19Encoder, "from_option", refuse)
        with pytest.raises(DataError) as err:
            gram_transfer(pair["content"], pair["style"], size=48, allow_random=True, optimize={"steps": 1})
    message = str(err.value)
    option = "size" if which == "content" else "style_size"
    assert message.startswith(f"{thin}: image is 20x300 px (16x48 px as resized for processing), too small: at "
                              f"relu5_1 (stride 16)") and "at least 48 px" in message
    assert f" {option}=720 or more (48x720 px)" in message, message
    assert Image.open(thin).size == (20, 300)
    # the suggested size works
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        enc = VGG19Encoder(taps=("relu4_1", "relu5_1"), weights="random")
    res = gram_transfer(pair["content"], pair["style"], encoder=enc, style_taps=("relu5_1",), optimize={"steps": 1},
                        **{"size": 48, "style_size": 48, option: 720})
    assert res.image.shape[-2:] == ((720, 48) if which == "content" else (48, 48))


def test_bad_inputs_give_clear_errors(encoder, decoders, photos):
    st = Stylizer(decoder=decoders, encoder=encoder, size=64)
    with pytest.raises(DataError, match="too small"):
        Stylizer(decoder=decoders, encoder=encoder, size=None)(torch.rand(3, 16, 16), photos["brick"])
    with pytest.raises(DataError, match="600x30 px \\(64x8 px as resized for processing\\)"):
        st(torch.rand(3, 30, 600), photos["brick"])  # long and thin: 64 px long side leaves a 3 px side
    with pytest.raises(DataError, match=r"values must be in \[0, 1\]"):
        st(torch.rand(3, 64, 64) * 255, photos["brick"])
    from genkit.core.reading import ReadPolicy

    strict = Stylizer(decoder=decoders, encoder=encoder, size=64, reading=ReadPolicy(strict=True))
    with pytest.raises(DataError, match="RGBA.*strict mode refuses"):  # RGBA converts by default (genkit.core)
        strict(photos["astronaut"].convert("RGBA"), photos["brick"])
    with pytest.raises(ConfigError, match="coarse to fine"):
        build_config(levels=["relu2_1", "relu4_1"])
    with pytest.raises(ConfigError, match="alpha"):
        build_config(alpha=[0.5, 2.0, 0.5])
    with pytest.raises(ConfigError, match="one reconstruction"):
        Stylizer(encoder=encoder)
    from genkit.core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="relu5_1"):
        Stylizer(decoder=decoders, encoder=encoder, levels=["relu5_1", "relu4_1"])


def test_fractional_slack_gives_exact_capacity_totals(encoder, decoders, photos):
    seen = {}
    for slack in (1.25, 2.0):
        res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=2, slack=slack)(
            photos["astronaut"], photos["brick"])
        for lv in res.levels:
            cap = lv.capacity.reshape(-1)
            total = math.ceil(slack * lv.n_content - 1e-9)
            q = total / lv.n_style
            assert int(cap.sum()) == lv.capacity_total == total, (slack, lv.tap)
            assert set(cap.unique().tolist()) <= {math.floor(q), math.ceil(q)}
            assert (counts_of(lv) <= cap).all() and lv.usage_quota == pytest.approx(q, abs=1e-6)
        seen[slack] = [lv.capacity_total for lv in res.levels]
    assert seen[1.25] != seen[2.0]  # the old integer ceil made these the same


def test_leftovers_of_a_level_are_placed_by_similarity(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(photos["astronaut"]), 96, 8), "relu3_1")[0]
        fs = encoder.encode(fit_size(to_tensor(photos["brick"]), 96, 8), "relu3_1")[0]
    level = LevelConfig.default("relu3_1", iterations=1, search="global")
    for exact_rows in (0, 512):
        cfg = ReshuffleConfig(levels=[level], top_k=2, exact_fill_rows=exact_rows)  # short lists: many leftovers
        res = reshuffle_level(fc, fs, level, cfg)
        st = res.stats
        assert st.n_filled > 50
        assert sum(st.fill.values()) == st.n_filled and st.fill_share == pytest.approx(st.n_filled / fc[0].numel())
        assert st.fill_similarity < st.matched_similarity  # the fill's leftovers are the less similar ones
        assert (st.fill["exact"] > 0) == bool(exact_rows)
        assert sorted(res.assign.tolist()) == list(range(fs.shape[1] * fs.shape[2]))  # the limit holds exactly
        assert st.as_dict()["fill_similarity"] == pytest.approx(st.fill_similarity, abs=1e-6)


def test_levels_stop_early_once_the_matching_settles(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        f = encoder.encode(fit_size(to_tensor(photos["coffee"]), 64, 8), "relu3_1")[0]
    level = LevelConfig("relu3_1", alpha=0.0, patch_size=3, iterations=5, pca_dims=None)
    res = reshuffle_level(f, f, level, ReshuffleConfig(levels=[level]))  # identity: nothing moves after one
    assert res.stats.iterations == 2 and res.stats.converged and res.stats.stop_reason == "similarity"
    assert res.stats.changes[1] == 0.0 and res.stats.changed == [0.0]
    res = reshuffle_level(f, f, level, ReshuffleConfig(levels=[level], tolerance=0.0))
    assert res.stats.iterations == 5 and not res.stats.converged and res.stats.stop_reason == "iterations"
    # a real pair: at most 5 iterations, stopping exactly when the mean matched similarity gains less than the
    # tolerance (or, with stop_on="changed", when fewer matches than the tolerance change)
    st = Stylizer(optimize=True, encoder=encoder, size=64)
    assert [lv.iterations for lv in st.config.levels] == [5, 5, 5]  # the release's iterations
    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(photos["astronaut"]), 64, 8), "relu3_1")[0]
        fs = encoder.encode(fit_size(to_tensor(photos["brick"]), 64, 8), "relu3_1")[0]
    lv = LevelConfig.default("relu3_1")
    for stop_on, tol in (("similarity", 0.01), ("changed", 0.5)):
        res = reshuffle_level(fc, fs, lv, ReshuffleConfig(levels=[lv], tolerance=tol, stop_on=stop_on))
        st = res.stats
        watched = ([b - a for a, b in zip(st.similarities, st.similarities[1:])] if stop_on == "similarity"
                   else st.changed)
        assert len(st.similarities) == st.iterations <= 5 and len(watched) == st.iterations - 1
        assert st.converged == (watched[-1] < tol) and all(w >= tol for w in watched[:-1])
        assert st.stop_reason == (stop_on if st.converged else "iterations")
        assert st.similarities[-1] == st.mean_similarity
    # the similarity watched is the reported one: the true cosine of the features just matched (the content at the
    # first iteration), not the matching space's
    one = LevelConfig.default("relu3_1", iterations=1)
    res = reshuffle_level(fc, fs, one, ReshuffleConfig(levels=[one]))
    true = float(assigned_patch_cosine(fc, fs, res.assign, one.patch_size).mean())
    assert abs(res.stats.similarities[0] - true) < 1e-5


def test_cells_go_to_the_majority_label_and_lost_labels_are_reported(encoder, decoders, photos):
    c_mask = torch.zeros(64, 64, dtype=torch.long)
    c_mask[:, 40:] = 1
    s_mask = torch.zeros(64, 64, dtype=torch.long)
    s_mask[:, 40:] = 1
    s_mask[:3, :3] = 2  # a 3x3 px region: it covers no relu4_1 cell (8x8 px) by majority
    c_mask[:4, :4] = 2
    with pytest.warns(UserWarning, match=r"relu4_1: style label 2 \(9 px\) has no feature cell"):
        res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=1)(
            photos["astronaut"].resize((64, 64)), photos["brick"].resize((64, 64)), c_mask, s_mask)
    from genkit.models.reshuffle.masks import grid_labels

    coarse = res.level("relu4_1")
    assert {"side": "style", "label": 2, "pixels": 9} in coarse.mask_lost
    assert {"side": "content", "label": 2, "pixels": 16} in coarse.mask_lost
    assert res.level("relu2_1").mask_lost == []  # 2x2 px cells: every label keeps a cell
    assert res.metadata()["levels"]["relu4_1"]["mask_lost"] == coarse.mask_lost
    labels_s = grid_labels(s_mask, coarse.style_hw)
    assert int((labels_s == 2).sum()) == 0 and int((labels_s == 1).sum()) == 8 * 3  # no cell claimed by presence
    labels_c = grid_labels(c_mask, coarse.content_hw)
    assert torch.equal(labels_s[coarse.assignment.reshape(-1)], labels_c)  # still restricted by label


def test_a_label_without_any_style_cell_falls_back_with_a_warning(encoder, decoders, photos):
    c_mask = torch.zeros(64, 64, dtype=torch.long)
    c_mask[:32, :32], c_mask[32:, 32:] = 1, 2
    s_mask = torch.zeros(64, 64, dtype=torch.long)
    s_mask[0:2, 0:2], s_mask[4:8, 4:8] = 1, 2  # two small regions inside one relu4_1 cell: label 0 keeps it
    with pytest.warns(UserWarning, match=r"relu4_1: content label\(s\) \[1, 2\]"):
        res = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=1)(
            photos["astronaut"].resize((64, 64)), photos["brick"].resize((64, 64)), c_mask, s_mask)
    coarse, finer = res.level("relu4_1"), res.level("relu2_1")
    assert coarse.mask_unrestricted == [1, 2] and finer.mask_unrestricted == []  # relu2_1 cells are 2x2 px
    from genkit.models.reshuffle.masks import grid_labels

    labels_c = grid_labels(c_mask, finer.content_hw)
    labels_s = grid_labels(s_mask, finer.style_hw)
    assert torch.equal(labels_s[finer.assignment.reshape(-1)], labels_c)  # restricted again where labels exist
    assert "unrestricted" in coarse.usage_limit
    assert (counts_of(coarse) <= coarse.capacity.reshape(-1)).all()
    with pytest.warns(UserWarning, match="relu4_1"):  # style-swap takes the same fallback
        swap = Stylizer(decoder=decoders, encoder=encoder, size=64, iterations=1, max_usage=None)(
            photos["astronaut"].resize((64, 64)), photos["brick"].resize((64, 64)), c_mask, s_mask)
    got = labels_s[swap.level("relu2_1").assignment.reshape(-1)]
    assert torch.equal(got, labels_c)


def test_a_too_large_global_search_runs_pooled_and_says_so(encoder, photos):
    from genkit.models.reshuffle.api import fit_size, to_tensor

    with torch.no_grad():
        fc = encoder.encode(fit_size(to_tensor(photos["astronaut"]), 128, 8), "relu4_1")[0]
        fs = encoder.encode(fit_size(to_tensor(photos["brick"]), 128, 8), "relu4_1")[0]
    level = LevelConfig.default("relu4_1", iterations=2)
    exact = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level]))
    pooled = reshuffle_level(fc, fs, level, ReshuffleConfig(levels=[level], max_global_pairs=64 * 64))
    assert exact.stats.searches == ["global", "local"] and pooled.stats.searches == ["local", "local"]
    assert any("2x average-pooled grid" in note for note in pooled.stats.approximate)
    assert not any("pooled" in note for note in exact.stats.approximate)
    assert sorted(pooled.assign.tolist()) == list(range(256))  # the usage limit still holds exactly
    assert pooled.stats.mean_similarity > 0.9 * exact.stats.mean_similarity


def test_the_release_profile_is_the_default_and_the_split_is_an_option():
    """The release blends at 0.6 on every level and carries each blend down: the content keeps 0.6^3 of the finest
    target. ``alpha="split"`` keeps genkit 0.3's decoder weights (the content's share 0.6^2 for any number of
    levels)."""
    cfg = build_config()
    assert [lv.alpha for lv in cfg.levels] == [0.6] * 3
    assert cfg.blend_alphas(carried=True) == [0.6] * 3
    # not carried (the optimisation path): each level blends the content at the running product
    assert cfg.blend_alphas(carried=False) == pytest.approx([0.6, 0.36, 0.216])
    assert build_config(content_share="per_level").blend_alphas(carried=False) == [0.6] * 3
    three = [lv.alpha for lv in build_config(alpha="split").levels]
    assert three[:2] == pytest.approx([0.6 ** 0.5] * 2) and math.prod(three) == pytest.approx(0.6 ** 2)
    assert [lv.alpha for lv in build_config(levels=["relu3_1", "relu2_1"], alpha="split").levels] == [0.6, 0.6]
    assert [lv.alpha for lv in build_config(alpha=[0.9, 0.5, 0.7]).levels] == [0.9, 0.5, 0.7]


def test_stylizer_defaults_are_the_release_on_both_paths(encoder, decoders):
    for st in (Stylizer(decoder=decoders, encoder=encoder), Stylizer(optimize=True, encoder=encoder)):
        assert [lv.alpha for lv in st.config.levels] == [0.6] * 3
    assert Stylizer(decoder=decoders, encoder=encoder).restore_detail is False


@pytest.mark.parametrize("hw,size,expected", [
    ((97, 123), None, (97, 123)),  # None keeps the size exactly (was 96x120)
    ((60, 1000), None, (60, 1000)),  # was 64x1000
    ((160, 240), 128, (85, 128)),  # the input's aspect, short side rounded (was 88x128)
    ((77, 61), 50, (50, 40)),  # portrait
])
def test_api_output_has_the_requested_size_and_aspect(encoder, decoders, photos, hw, size, expected):
    content = photos["astronaut"].resize(hw[::-1])
    res = Stylizer(decoder=decoders, encoder=encoder, size=size, iterations=1)(content, photos["brick"].resize((64, 64)))
    assert tuple(res.image.shape) == (3, *expected) and res.to_pil().size == expected[::-1]
    meta = res.metadata()
    assert meta["size"] == list(expected[::-1])
    assert all(s % 8 == 0 for s in meta["processing_size"]) and meta["processing_size"] != meta["size"]


def test_api_output_size_in_batches_and_on_the_optimisation_path(encoder, decoders, photos):
    contents = [torch.rand(3, 45, 70), photos["coffee"].resize((61, 77))]
    out = stylize(contents, [photos["brick"].resize((64, 64))], decoder=decoders, encoder=encoder, size=None,
                  iterations=1)
    assert [tuple(r.image.shape) for r in out] == [(3, 45, 70), (3, 77, 61)]
    res = stylize(torch.rand(3, 45, 70), photos["brick"].resize((64, 64)), optimize={"steps": 1}, encoder=encoder,
                  size=100, iterations=1, preserve_color="luminance")
    assert tuple(res.image.shape) == (3, 64, 100)  # 45 * 100 / 70 = 64.3
    assert res.metadata()["processing_size"] == [104, 64]  # 12.5 strides: rounded up
    res = stylize(photos["coffee"], photos["brick"], decoder=decoders, encoder=encoder, size=48, iterations=1)
    assert tuple(res.image.shape) == (3, 32, 48) and "processing_size" not in res.metadata()  # only when it differs


def test_api_small_inputs_are_checked_after_resizing_and_name_the_option(encoder, decoders, photos):
    style = photos["brick"].resize((64, 64))
    res = Stylizer(decoder=decoders, encoder=encoder, size=48, iterations=1)(torch.rand(3, 8, 8), style)
    assert tuple(res.image.shape) == (3, 48, 48)  # enlarged by size=48 (was refused as 8x8 px)
    res = Stylizer(decoder=decoders, encoder=encoder, size=360, iterations=1)(torch.rand(3, 300, 20), style)
    assert tuple(res.image.shape) == (3, 360, 24)
    with pytest.raises(DataError, match=r"tiny\.png.*8x8 px.*too small.*size=24 or more") as err:
        Stylizer(decoder=decoders, encoder=encoder, size=None)(torch.rand(3, 8, 8), style, content_name="tiny.png")
    assert "style_size" not in str(err.value)
    with pytest.raises(DataError, match=r"brick\.png.*too small.*style_size=24 or more") as err:
        Stylizer(decoder=decoders, encoder=encoder, size=64, style_size=16)(photos["astronaut"], style,
                                                                             style_name="brick.png")
    assert "size=" not in str(err.value).replace("style_size=", "")


def test_api_output_aspect_is_the_file_s_when_it_is_decoded_reduced(encoder, decoders, photos, tmp_path):
    # a file far larger than the size is read reduced (97x104 -> 49x52, sides rounded up), whose aspect would give
    # 23x24; the file's own aspect gives 97 * 24 / 104 = 22.4 -> 22x24
    photos["astronaut"].resize((104, 97)).save(tmp_path / "c.png")
    res = Stylizer(decoder=decoders, encoder=encoder, size=24, iterations=1)(tmp_path / "c.png",
                                                                              photos["brick"].resize((64, 64)))
    assert tuple(res.image.shape) == (3, 22, 24)

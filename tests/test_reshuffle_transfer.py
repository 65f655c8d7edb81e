"""Coarse-to-fine transfer and the Python API, at tiny sizes with random VGG weights."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from genkit.errors import ConfigError, DataError
from genkit.models.reshuffle import ReshuffleDecoders, Stylizer, stylize
from genkit.models.reshuffle.color import match_color, rgb_to_ycbcr
from genkit.models.reshuffle.config import LevelConfig, ReshuffleConfig, build_config
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
        expected = options.get("max_usage") or math.ceil(options.get("slack", 1.0) * lv.n_content / lv.n_style - 1e-9)
        assert limit == expected and (limit > 1) == bool(options)
        assert int(counts.max()) <= limit, lv.tap
        assert counts.sum() == lv.n_content
        assert lv.max_usage == int(counts.max()) and lv.distinct_used == int((counts > 0).sum())
    assert res.image.shape == (3, 64, 64) and 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    # finer levels start from the upsampled assignment and only search locally
    assert res.levels[0].searches[0] == "global"
    assert all(s == "local" for lv in res.levels[1:] for s in lv.searches)


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
    from genkit.models.reshuffle.api import fit_size, to_tensor

    c = fit_size(to_tensor(content), 64, 8)[0]
    chroma_out, chroma_c = rgb_to_ycbcr(res.image)[1:], rgb_to_ycbcr(c)[1:]
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
    assert [r.image.shape for r in out] == [(3, 48, 48), (3, 48, 48), (3, 32, 48), (3, 32, 48)]
    summary = out[0].summary()
    assert set(summary) == set(LEVELS)
    assert {"distinct_used", "max_usage", "usage_limit", "distinct_fraction", "mean_similarity"} <= set(summary["relu4_1"])
    meta = out[0].metadata()
    assert meta["random_weights"] is True and meta["settings"]["reconstruction"] == "decoder"


def test_optimisation_path_lowers_its_loss(encoder, photos):
    res = stylize(photos["astronaut"], photos["brick"], optimize={"steps": 6, "optimizer": "adam", "lr": 0.05,
                                                                  "gram_weight": 1.0},
                  encoder=encoder, size=48, levels=["relu4_1", "relu3_1"], iterations=1)
    assert [h["tap"] for h in res.optimization] == ["relu4_1", "relu3_1"]
    assert all(h["iterations"] == 6 and h["seconds_per_iteration"] > 0 for h in res.optimization)
    from genkit.models.reshuffle.optimize import OptimizationReconstructor, OptimizeSettings

    x = torch.rand(1, 3, 48, 48)
    target = {"relu4_1": torch.relu(torch.randn(1, 512, 6, 6))}
    rec = OptimizationReconstructor(encoder, OptimizeSettings(steps=8, optimizer="lbfgs"))
    before = float(rec.loss(x, target))
    rec("relu4_1", target["relu4_1"], x, target)
    assert rec.history[-1]["final_loss"] < before


def test_bad_inputs_give_clear_errors(encoder, decoders, photos):
    st = Stylizer(decoder=decoders, encoder=encoder, size=64)
    with pytest.raises(DataError, match="too small"):
        st(torch.rand(3, 16, 16), photos["brick"])
    with pytest.raises(DataError, match="resized image"):
        st(torch.rand(3, 30, 600), photos["brick"])  # long and thin: 64 px long side leaves a 3 px side
    with pytest.raises(DataError, match=r"values must be in \[0, 1\]"):
        st(torch.rand(3, 64, 64) * 255, photos["brick"])
    from genkit.io import ReadPolicy

    strict = Stylizer(decoder=decoders, encoder=encoder, size=64, reading=ReadPolicy(strict=True))
    with pytest.raises(DataError, match="RGBA.*strict mode refuses"):  # RGBA converts by default (genkit.io)
        strict(photos["astronaut"].convert("RGBA"), photos["brick"])
    with pytest.raises(ConfigError, match="coarse to fine"):
        build_config(levels=["relu2_1", "relu4_1"])
    with pytest.raises(ConfigError, match="alpha"):
        build_config(alpha=[0.5, 2.0, 0.5])
    with pytest.raises(ConfigError, match="one reconstruction"):
        Stylizer(encoder=encoder)
    from genkit.errors import CheckpointError

    with pytest.raises(CheckpointError, match="relu5_1"):
        Stylizer(decoder=decoders, encoder=encoder, levels=["relu5_1", "relu4_1"])

"""Style-transfer metrics on the shared VGG-19 encoder: content, Gram style, patch-usage evenness."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from genkit.core.errors import DataError
from genkit.metrics.style import (StyleTransferMetrics, content_distance, gram_matrix, gram_style_distance,
                                  patch_usage_stats, style_transfer_metrics)
from genkit.nn.vgg import STYLE_TAPS, VGG19Encoder


@pytest.fixture(scope="module")
def encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return VGG19Encoder(taps=STYLE_TAPS, weights="random")


def _img(n=1, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_content_distance_is_relu4_1_mse(encoder):
    a, b = _img(2, seed=1), _img(2, seed=2)
    d = content_distance(a, b, encoder)
    fa, fb = encoder.encode(a, "relu4_1"), encoder.encode(b, "relu4_1")
    torch.testing.assert_close(d, ((fa - fb) ** 2).mean(dim=(1, 2, 3)))
    assert (d > 0).all()
    assert float(content_distance(a, a, encoder).abs().max()) == 0.0


def test_gram_is_invariant_to_spatial_rearrangement():
    f = torch.randn(1, 8, 5, 6, generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    shuffled = f.flatten(2)[:, :, perm].reshape(1, 8, 5, 6)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(f))
    assert gram_matrix(f).shape == (1, 8, 8)
    torch.testing.assert_close(gram_matrix(f)[0], f[0].reshape(8, 30) @ f[0].reshape(8, 30).T / 30)


def test_gram_style_distance(encoder):
    out, style = _img(2, seed=3), _img(1, size=48, seed=4)  # style of another size, broadcast over the batch
    total, per_layer = gram_style_distance(out, style, encoder)
    assert set(per_layer) == set(STYLE_TAPS) and total.shape == (2,)
    torch.testing.assert_close(total, torch.stack(list(per_layer.values())).mean(0))
    assert (total > 0).all()
    same, _ = gram_style_distance(style, style, encoder)
    assert float(same.abs().max()) == 0.0


def test_patch_usage_stats():
    even = patch_usage_stats(torch.tensor([3, 3, 3, 3]))
    assert even["patch_usage_fraction"] == 1.0
    assert even["patch_usage_entropy"] == pytest.approx(1.0)
    assert even["patch_usage_max_over_mean"] == pytest.approx(1.0)
    assert even["patch_usage_cv"] == pytest.approx(0.0)
    washed = patch_usage_stats(torch.tensor([12, 0, 0, 0]))
    assert washed["patch_usage_fraction"] == 0.25
    assert washed["patch_usage_entropy"] == pytest.approx(0.0)
    assert washed["patch_usage_max_over_mean"] == pytest.approx(4.0)
    mixed = patch_usage_stats(torch.tensor([0, 0, 1, 1, 2, 2, 2, 2]), num_style_patches=4)  # an assignment
    p = torch.tensor([2, 2, 4, 0]) / 8
    assert mixed["patch_usage_fraction"] == 0.75
    ent = -sum(float(x) * math.log(float(x)) for x in p if x > 0) / math.log(4)
    assert mixed["patch_usage_entropy"] == pytest.approx(ent)
    with pytest.raises(DataError, match="no patch was used"):
        patch_usage_stats(torch.zeros(5))
    with pytest.raises(ValueError, match="indices"):
        patch_usage_stats(torch.tensor([0, 7]), num_style_patches=4)


def test_style_transfer_metrics_and_metric_merge(encoder):
    out, content, style = _img(2, seed=5), _img(2, seed=6), _img(1, seed=7)
    res = style_transfer_metrics(out, content, style, encoder, usage=torch.tensor([1, 2, 3]))
    assert res["protocol"]["vgg19"] == "RANDOM"
    assert res["content_distance"] > 0 and res["gram_style_distance"] > 0
    assert 0 < res["patch_usage_entropy"] <= 1

    whole = StyleTransferMetrics(encoder=encoder)
    whole.update(out, content, style)
    a, b = StyleTransferMetrics(encoder=encoder), StyleTransferMetrics(encoder=encoder)
    a.update(out[:1], content[:1], style)
    b.update(out[1:], content[1:], style)
    a.merge_state(b)
    w, m = whole.compute(), a.compute()
    assert float(m["content_distance"]) == pytest.approx(float(w["content_distance"]), rel=1e-6)
    assert float(m["gram_style_distance"]) == pytest.approx(res["gram_style_distance"], rel=1e-5)

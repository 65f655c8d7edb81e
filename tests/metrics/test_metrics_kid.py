"""KID: the unbiased estimator against a direct computation, subsets, the Metric's cat states and merge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genkit.core.errors import ConfigError, DataError
from genkit.metrics.kid import KernelInceptionDistance, kid_from_features


class _Identity(torch.nn.Module):
    """A stand-in feature extractor for Metric mechanics (features are given directly)."""

    num_features = 16
    protocol = {"weights": "none (test)"}

    def forward(self, x):
        return x


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out with explicit pairs."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_direct_unbiased_mmd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 16))
    y = rng.normal(size=(12, 16)) * 1.3 + 0.4
    mean, std = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=1, subset_size=12)
    assert mean == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_subsets_follow_torch_fidelity_sampling():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 16))
    y = rng.normal(size=(15, 16)) + 0.3
    mean, std = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=4, subset_size=8, seed=5)
    sampler = np.random.RandomState(5)
    values = []
    for _ in range(4):
        i = sampler.choice(20, 8, replace=False)
        j = sampler.choice(15, 8, replace=False)
        values.append(_direct_mmd2(x[i], y[j]))
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)
    assert mean > 0  # the sets differ


def test_kid_is_small_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g)
    same, _ = kid_from_features(a, b, subsets=10, subset_size=100)
    shifted, _ = kid_from_features(a, b + 1.0, subsets=10, subset_size=100)
    assert abs(same) < 0.05 * shifted


def test_kid_errors_for_too_few_samples():
    x = torch.randn(5, 16)
    with pytest.raises(ConfigError, match="subset size 10"):
        kid_from_features(x, x, subset_size=10)
    with pytest.raises(DataError, match="at least 2"):
        kid_from_features(x[:1], x, subset_size=2)


def test_kid_metric_cat_states_merge_like_ddp():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(16, 16, generator=g)
    fake = torch.randn(16, 16, generator=g) + 0.5
    kwargs = dict(feature=_Identity(), subsets=5, subset_size=8)

    whole = KernelInceptionDistance(**kwargs)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    assert whole._reductions["real_features"].__name__ == "dim_zero_cat"

    rank0, rank1 = KernelInceptionDistance(**kwargs), KernelInceptionDistance(**kwargs)
    rank0.update(real[:7], real=True)
    rank0.update(fake[:9], real=False)
    rank1.update(real[7:], real=True)
    rank1.update(fake[9:], real=False)
    rank1.merge_state(rank0)  # incoming first: rank 0's features, then rank 1's (the all-gather order)
    m_whole, s_whole = whole.compute()
    m_merged, s_merged = rank1.compute()
    assert float(m_merged) == pytest.approx(float(m_whole), rel=1e-9)
    assert float(s_merged) == pytest.approx(float(s_whole), rel=1e-9)
    direct, _ = kid_from_features(real, fake, subsets=5, subset_size=8)
    assert float(m_whole) == pytest.approx(direct, rel=1e-9)


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_kid_metric_keeps_real_features_when_asked():
    m = KernelInceptionDistance(feature=_Identity(), subsets=1, subset_size=4, reset_real_features=False)
    m.update(torch.randn(6, 16), real=True)
    m.update(torch.randn(6, 16), real=False)
    m.reset()
    assert len(m.real_features) == 1 and len(m.fake_features) == 0
    with pytest.raises(DataError, match="one side has none"):
        m.compute()

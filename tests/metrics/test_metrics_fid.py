"""FID: the distance itself, statistics files, the torchmetrics Metric (merge = DDP reduction)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from genkit.core.errors import ConfigError, DataError
from genkit.metrics.fid import (FrechetInceptionDistance, SmallSampleWarning, covariance_factor, fid_from_stats,
                               frechet_distance, trace_sqrt_product)
from genkit.metrics.stats_cache import FIDStats, RunningStats, load_npz, save_npz, stats_from_features


@pytest.fixture(autouse=True)
def _stats_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def random_inception():
    from genkit.metrics.inception import random_inception

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return random_inception(seed=3)


@pytest.fixture(scope="module")
def faces_and_features(random_inception):
    """6 real and 6 fake 32x32 faces and their features (computed once: Inception is slow on CPU)."""
    real, fake = _faces(6, seed=0), _faces(6, seed=1)
    return real, fake, random_inception(real), random_inception(fake)


def _faces(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    from genkit.data.synthetic import synthetic_faces

    return torch.stack([torch.from_numpy(img).permute(2, 0, 1) for img, _ in synthetic_faces(n, size, seed)])


# ------------------------------------------------------------------------------------------- the distance


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # commuting, non-diagonal: same eigenbasis
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_trace_sqrt_matches_scipy_sqrtm_for_general_covariances():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-8)


def _low_rank_features(n: int, scales, seed: int, basis: np.ndarray) -> np.ndarray:
    """n feature vectors (n, d) around 0.5 in the span of ``basis`` (d, k), with these standard deviations."""
    rng = np.random.default_rng(seed)
    return 0.5 + (rng.normal(size=(n, basis.shape[1])) * np.asarray(scales)) @ basis.T


def test_trace_sqrt_and_fid_are_exact_for_rank_deficient_covariances():
    """8 samples per side in 2048 dimensions (rank 6): one direction has 1e-5 of the largest variance, so its
    eigenvalue of S1 S2 is ~1e-13 of the largest. It is real (float64 resolves it) and must be counted.

    The float64 reference is independent of covariance matrices: with S = Xc^T Xc / (n - 1) for centred features
    Xc, the eigenvalues of S1 S2 are the squared singular values of Xc1 Xc2^T / (n - 1), an 8 x 8 matrix."""
    d, n = 2048, 8
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(d, 6)))
    x1 = _low_rank_features(n, [1, .8, .6, .5, .3, 10 ** -2.5], 1, basis)
    x2 = _low_rank_features(n, [1, .9, .5, .4, .2, 10 ** -2.5], 2, basis)
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    singular = np.linalg.svd(c1 @ c2.T, compute_uv=False) / (n - 1)
    assert 1e-15 < (singular[5] / singular[0]) ** 2 < 1e-12  # the small real eigenvalue, relative to the largest
    ref_trace = singular.sum()
    ref_fid = (np.sum((x1.mean(0) - x2.mean(0)) ** 2) + np.sum(c1 ** 2) / (n - 1) + np.sum(c2 ** 2) / (n - 1)
               - 2 * ref_trace)

    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref_trace, rel=1e-10)
    with pytest.warns(SmallSampleWarning, match="8 samples give a covariance of rank at most 7 < 2048"):
        value = fid_from_stats(stats_from_features(x1), stats_from_features(x2))
    assert value == pytest.approx(ref_fid, rel=1e-8)


def test_trace_sqrt_of_full_rank_covariances_matches_sqrtm():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 64)) @ rng.normal(size=(64, 64))
    y = rng.normal(size=(300, 64)) * rng.uniform(0.01, 2.0, 64) + 1.0
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-10)
    assert covariance_factor(s1).shape == (64, 64)
    np.testing.assert_allclose(covariance_factor(s1).T @ covariance_factor(s1), s1, rtol=0, atol=1e-12 * s1.max())


def test_fid_of_a_set_with_itself_is_zero_and_never_negative():
    rng = np.random.default_rng(2)
    # full rank, and rank-deficient (fewer samples than dimensions: the numerically hard case)
    for n, d in ((200, 32), (12, 256)):
        feats = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.1 + 0.5
        s = stats_from_features(feats)
        value = fid_from_stats(s, s)
        assert 0.0 <= value < 1e-6 * np.trace(s.sigma)
        # tiny perturbations: still never negative
        for k in range(5):
            t = stats_from_features(feats + rng.normal(scale=1e-9, size=feats.shape))
            assert fid_from_stats(s, t) >= 0.0


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_running_stats_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(57, 10)) + 3.0
    rs = RunningStats(10)
    for chunk in np.array_split(feats, 5):
        rs.update(torch.from_numpy(chunk))
    s = rs.stats()
    np.testing.assert_allclose(s.mu, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.sigma, np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)
    with pytest.raises(DataError, match="at least 2"):
        RunningStats(10).stats()


# -------------------------------------------------------------------------------------------- .npz files


def test_npz_round_trip_and_pytorch_fid_format(tmp_path):
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(30, 2048)).astype(np.float32)
    s = stats_from_features(feats, protocol={"weights": "abc"})
    path = save_npz(s, tmp_path / "ref.npz")
    with np.load(path) as raw:  # what pytorch-fid reads
        np.testing.assert_array_equal(raw["mu"], s.mu)
        np.testing.assert_array_equal(raw["sigma"], s.sigma)
    back = load_npz(path)
    np.testing.assert_array_equal(back.mu, s.mu)
    np.testing.assert_array_equal(back.sigma, s.sigma)
    assert back.num_samples == 30 and back.protocol["weights"] == "abc"
    # a plain pytorch-fid file (only mu and sigma) loads too
    np.savez(tmp_path / "plain.npz", mu=s.mu.astype(np.float32), sigma=s.sigma.astype(np.float32))
    plain = load_npz(tmp_path / "plain.npz")
    assert plain.num_samples is None and plain.mu.dtype == np.float64
    assert fid_from_stats(back, plain) == pytest.approx(0.0, abs=1e-3)


def test_npz_of_wrong_dimension_or_content_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "d64.npz", mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(DataError, match=r"d64\.npz.*dimension 64, expected 2048"):
        load_npz(tmp_path / "d64.npz")
    np.savez(tmp_path / "nosigma.npz", mu=np.zeros(2048))
    with pytest.raises(DataError, match="sigma"):
        load_npz(tmp_path / "nosigma.npz")
    np.savez(tmp_path / "shape.npz", mu=np.zeros(2048), sigma=np.eye(64))
    with pytest.raises(DataError, match="inconsistent"):
        load_npz(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk\.npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------------------------ Metric


def test_fid_metric_states_are_float64_sums_and_merge_like_ddp(random_inception, faces_and_features):
    real, fake, fr, ff = faces_and_features

    whole = FrechetInceptionDistance(feature=random_inception)
    whole.update(real[:2], real=True)  # the image path ...
    whole.update(None, True, features=fr[2:])
    whole.update(fake, real=False)
    for name in ("real_features_sum", "real_features_cov_sum", "fake_features_sum", "fake_features_cov_sum"):
        assert getattr(whole, name).dtype == torch.float64
        assert whole._reductions[name].__name__ == "dim_zero_sum"
    assert whole.real_features_cov_sum.shape == (2048, 2048)  # constant memory, whatever the image count

    half1 = FrechetInceptionDistance(feature=random_inception)
    half2 = FrechetInceptionDistance(feature=random_inception)
    half1.update(None, True, features=fr[:5])  # ... equals the feature path, split across "processes"
    half1.update(None, False, features=ff[:3])
    half2.update(None, True, features=fr[5:])
    half2.update(None, False, features=ff[3:])
    half1.merge_state(half2)
    a, b = float(whole.compute()), float(half1.compute())
    assert a > 0
    assert b == pytest.approx(a, rel=1e-9)
    # and the torchmetrics value is the plain function of the statistics
    ref = fid_from_stats(stats_from_features(fr.double()), stats_from_features(ff.double()))
    assert a == pytest.approx(ref, rel=1e-9)


def test_fid_metric_with_fixed_reference_and_value_range(random_inception, faces_and_features, tmp_path):
    real, fake, fr, ff = faces_and_features
    ref_stats = stats_from_features(fr)
    save_npz(ref_stats, tmp_path / "ref.npz")
    m = FrechetInceptionDistance(feature=random_inception, reference=tmp_path / "ref.npz", value_range=(-1.0, 1.0))
    m.update(fake[:3].float() / 127.5 - 1.0, real=False)  # floats in [-1, 1] round back to the same uint8
    m.update(None, False, features=ff[3:])
    expected = fid_from_stats(ref_stats, stats_from_features(ff))
    assert float(m.compute()) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ConfigError, match="reference"):
        m.update(real, real=True)
    m.reset()
    assert m.reference is not None


def test_random_inception_features_are_not_vanishing(random_inception, faces_and_features):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    assert isinstance(random_inception.net, FeatureExtractorInceptionV3)  # torch-fidelity's network and resize
    assert random_inception.protocol["weights"] == "RANDOM"
    feats = faces_and_features[2]
    assert feats.shape == (6, 2048) and torch.isfinite(feats).all()
    assert float(feats.abs().mean()) > 1e-2  # variance-preserving init: unit-scale, not ~1e-9
    assert float(feats.std(dim=0).mean()) > 1e-4  # and they differ between images


def test_fid_metric_needs_two_samples_per_side(random_inception, faces_and_features):
    m = FrechetInceptionDistance(feature=random_inception)
    m.update(None, True, features=faces_and_features[2][:1])
    m.update(None, False, features=faces_and_features[3])
    with pytest.raises(DataError, match="at least 2"):
        m.compute()


def test_reference_of_wrong_dimension_is_refused(random_inception, tmp_path):
    save_npz(FIDStats(np.zeros(64), np.eye(64), 10), tmp_path / "small.npz")
    with pytest.raises(DataError, match="dimension 64"):
        FrechetInceptionDistance(feature=random_inception, reference=tmp_path / "small.npz")


def test_uint8_is_required_without_value_range(random_inception):
    m = FrechetInceptionDistance(feature=random_inception)
    with pytest.raises(ValueError, match="value_range"):
        m.update(torch.rand(2, 3, 32, 32), real=True)


def test_a_file_that_is_no_statistics_npz_says_so_without_pickle_advice(tmp_path):
    (tmp_path / "text.npz").write_text("mu sigma\n1 2 3\n")
    np.save(tmp_path / "array.npy", np.zeros(4))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")  # a single .npy array, not an .npz archive
    np.savez(tmp_path / "objects.npz", mu=np.array([{"a": 1}], dtype=object), sigma=np.eye(1))
    np.savez(tmp_path / "words.npz", mu=np.array(["x", "y"]), sigma=np.eye(2))
    for name in ("text.npz", "array.npz", "objects.npz", "words.npz"):
        with pytest.raises(DataError) as info:
            load_npz(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: not a valid FID statistics .npz"), message
        assert "'mu' and 'sigma' arrays" in message and "\n" not in message
        assert "pickle" not in message and "trust" not in message

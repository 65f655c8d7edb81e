"""Precision/recall (k-NN) and density/coverage equal the reference ``prdc`` package on the same features."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from genkit.metrics.manifold import PrecisionRecallDensityCoverage, precision_recall_density_coverage


def _reference(real, fake, k):
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        return compute_prdc(real_features=real, fake_features=fake, nearest_k=k)


@pytest.mark.parametrize("n_real, n_fake, shift, k", [(60, 45, 0.3, 3), (40, 70, 1.0, 3), (50, 50, 0.0, 5)])
def test_equal_to_prdc_on_the_same_features(n_real, n_fake, shift, k):
    rng = np.random.default_rng(n_real + n_fake)
    real = rng.normal(size=(n_real, 64))
    fake = rng.normal(size=(n_fake, 64)) * 1.3 + shift
    ref = _reference(real, fake, k)
    ours = precision_recall_density_coverage(real, fake, k, chunk_size=17)  # chunks that do not divide N
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-6), name


def test_real_and_fake_are_not_interchangeable():
    """A fake set that collapsed onto a few real samples: high precision, low recall; swapped, the other way."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(80, 16))
    fake = real[:8].repeat(10, axis=0) + 1e-3 * rng.normal(size=(80, 16))
    right = precision_recall_density_coverage(real, fake, 3)
    swapped = precision_recall_density_coverage(fake, real, 3)
    assert right["precision"] > 0.95 and right["recall"] < 0.3 and right["coverage"] < 0.5
    assert swapped["precision"] == pytest.approx(right["recall"], abs=0.1)
    assert right == pytest.approx({k: float(v) for k, v in _reference(real, fake, 3).items()}, abs=1e-6)


def test_metric_accumulates_batches_like_the_function():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(30, 8)), rng.normal(size=(25, 8)) + 0.5
    metric = PrecisionRecallDensityCoverage(k=3)
    for chunk in np.array_split(real, 3):
        metric.update(torch.from_numpy(chunk), real=True)
    for chunk in np.array_split(fake, 2):
        metric.update(torch.from_numpy(chunk), real=False)
    out = metric.compute()
    ref = precision_recall_density_coverage(real.astype(np.float32), fake.astype(np.float32), 3)
    assert {k: float(v) for k, v in out.items()} == pytest.approx(ref, abs=1e-12)


def test_too_few_samples_for_k_is_a_clear_error():
    from genkit.core.errors import ConfigError

    with pytest.raises(ConfigError, match="k=3"):
        precision_recall_density_coverage(np.zeros((3, 4)), np.ones((10, 4)), 3)

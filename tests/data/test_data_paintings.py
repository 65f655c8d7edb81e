"""Procedural paintings: deterministic, colourful style images with structure (the demo's and notebooks' styles)."""

import numpy as np
import pytest

from genkit.data.paintings import PAINTINGS, painting
from genkit.data.samples import STYLE_SAMPLES, sample_photo


def _saturation(arr: np.ndarray, q: float | None = None) -> float:
    a = arr.astype(np.float64) / 255
    s = a.max(-1) - a.min(-1)
    return float(s.mean() if q is None else np.quantile(s, q))


@pytest.mark.parametrize("name", sorted(PAINTINGS))
def test_painting_is_deterministic_colourful_and_structured(name):
    a, b = np.asarray(painting(name, size=96, seed=3)), np.asarray(painting(name, size=96, seed=3))
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b), "the same seed must give the same image"
    assert not np.array_equal(a, np.asarray(painting(name, size=96, seed=4))), "another seed, another image"
    assert _saturation(a) > 0.25, "a style image must carry colour (gravel/brick do not)"
    assert a.reshape(-1, 3).std(0).min() > 25, "not flat"
    # local structure: neighbouring pixels differ (strokes, grout), unlike a smooth gradient
    assert np.abs(np.diff(a.astype(np.int64), axis=1)).mean() > 8


def test_every_style_sample_is_colourful():
    grey = np.asarray(sample_photo("gravel"))
    assert _saturation(grey, 0.9) < 0.05  # the old demo's style: no colour to transfer
    for name in STYLE_SAMPLES:
        assert _saturation(np.asarray(sample_photo(name)), 0.9) > 0.15, name


def test_unknown_painting_names_the_choices():
    with pytest.raises(KeyError, match="brush_strokes"):
        painting("sunflowers")

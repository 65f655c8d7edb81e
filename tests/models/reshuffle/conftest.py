"""Fixtures of the reshuffle tests."""

import warnings

import pytest

LEVELS = ["relu4_1", "relu3_1", "relu2_1"]


@pytest.fixture(scope="module")
def random_encoder():
    """A VGG-19 encoder with random (variance-preserving) weights at the three default levels."""
    from genkit.nn.vgg import VGG19Encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning
        return VGG19Encoder(taps=LEVELS, weights="random")

"""Tiled encoding and decoding equal the untiled results, so large images run with a bounded peak memory."""

from __future__ import annotations


import pytest
import torch

from genkit.models.reshuffle import ReshuffleDecoders, Stylizer
from genkit.models.reshuffle.tiling import TiledEncoder, tiled_decode

LEVELS = ["relu4_1", "relu3_1", "relu2_1"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder(random_encoder):
    return random_encoder


def test_tiled_encoder_equals_the_whole_image(encoder):
    x = torch.rand(1, 3, 200, 264, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = encoder(x, taps=LEVELS)
        calls = []
        tiled = TiledEncoder(encoder, 64)
        real = tiled.encoder
        tiled.encoder = lambda crop, taps: calls.append(tuple(crop.shape[-2:])) or real(crop, taps=taps)
        tiled.encoder.taps = LEVELS
        parts = tiled(x, LEVELS)
    assert len(calls) == 4 * 5 and max(max(c) for c in calls) <= 64 + 2 * 64  # tiles, never the whole image
    for tap in LEVELS:
        torch.testing.assert_close(parts[tap], whole[tap], atol=1e-4, rtol=1e-4)


def test_tiled_decoders_equal_the_whole_map():
    torch.manual_seed(0)
    dec = ReshuffleDecoders(LEVELS, width=0.25).eval()
    h = torch.rand(1, 512, 13, 17)
    with torch.no_grad():
        whole = dec.to_next(h, "relu4_1", "relu3_1")
        tiled = tiled_decode(lambda t: dec.to_next(t, "relu4_1", "relu3_1"), h, 2, 32, 8)  # 4-cell tiles
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
        g = torch.rand(1, 128, 30, 22)
        torch.testing.assert_close(tiled_decode(lambda t: dec.to_image(t, "relu2_1"), g, 2, 16, 2),
                                   dec.to_image(g, "relu2_1"), atol=1e-5, rtol=1e-5)


def test_a_tiled_transfer_gives_the_untiled_output(encoder):
    torch.manual_seed(1)
    dec = ReshuffleDecoders(LEVELS, width=0.125).eval()
    c, s = torch.rand(3, 96, 128), torch.rand(3, 96, 128)
    whole = Stylizer(decoder=dec, encoder=encoder, size=128, iterations=2, tile=0)(c, s)
    tiled = Stylizer(decoder=dec, encoder=encoder, size=128, iterations=2, tile=48)(c, s)
    assert tiled.settings["tile"] == 48
    torch.testing.assert_close(tiled.image, whole.image, atol=2e-3, rtol=0)
    assert [lv.mean_similarity for lv in tiled.levels] == pytest.approx([lv.mean_similarity for lv in whole.levels],
                                                                        abs=1e-3)

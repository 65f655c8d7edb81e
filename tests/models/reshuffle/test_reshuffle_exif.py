"""EXIF-rotated JPEGs decoded reduced: the size a transfer reports and works with is the upright image's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.models.reshuffle import Stylizer
from genkit.models.reshuffle.api import prepare_input
from genkit.models.reshuffle.config import build_config

pytestmark = pytest.mark.usefixtures("one_thread")

# the stored pixels of an upright picture that EXIF orientation 6 (8) turns 90 degrees clockwise (counter-clockwise)
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _upright(w: int, h: int) -> Image.Image:
    from genkit.data.samples import sample_photo

    return sample_photo("astronaut").resize((w, h))


def _exif_jpeg(path, upright: Image.Image, orientation: int):
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED[orientation]).save(path, quality=95, exif=exif.tobytes())
    return path


def _mean_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


# 241x403: a clear portrait. 802x801 and 801x802: at --size 48 the stored 801x802 (802x801) pixels are decoded at
# 1/8 as 101x101, whose aspect cannot tell which way up the file is (the size was taken the wrong way round)
@pytest.mark.parametrize("wh", [(241, 403), (802, 801), (801, 802)])
@pytest.mark.parametrize("orientation", [6, 8])
def test_a_reduced_exif_rotated_jpeg_reports_the_upright_size(tmp_path, wh, orientation):
    w, h = wh
    upright = _upright(w, h)
    upright.save(tmp_path / "upright.png")
    rotated = _exif_jpeg(tmp_path / "rotated.jpg", upright, orientation)
    cfg = build_config()
    t, source = prepare_input(rotated, "rotated", 48, cfg)
    t_up, source_up = prepare_input(tmp_path / "upright.png", "upright", 48, cfg)
    assert source == source_up == (h, w)  # (H, W) of the picture as seen, not of the stored pixels
    assert min(Image.open(rotated).size) >= 4 * 48  # decoded reduced (at 1/8 or 1/4)
    assert t.shape == t_up.shape
    # upright too: far closer to the upright picture than to the same picture turned the other way or flipped
    wrong = [t_up.flip(-1), t_up.flip(-2)] + ([t_up.transpose(-1, -2)] if t.shape[-1] == t.shape[-2] else [])
    assert all(_mean_diff(t, t_up) < 0.5 * _mean_diff(t, other) for other in wrong)


@pytest.mark.parametrize("orientation", [6, 8])
def test_stylizing_a_reduced_exif_rotated_jpeg_with_label_maps_matches_the_upright_picture(tmp_path, random_encoder,
                                                                                         orientation):
    # a label map is drawn on the picture as seen: 802x801, top half label 1. It was refused as "802x801 but the
    # content image is 801x802" when the content was an EXIF-rotated JPEG decoded reduced
    w, h = 802, 801
    upright = _upright(w, h)
    upright.save(tmp_path / "upright.png")
    rotated = _exif_jpeg(tmp_path / "rotated.jpg", upright, orientation)
    labels = np.zeros((h, w), np.uint8)
    labels[: h // 2] = 1
    Image.fromarray(labels, "L").save(tmp_path / "content_mask.png")
    style = _upright(64, 64)
    Image.fromarray(np.where(np.arange(64)[:, None] < 32, 1, 0).repeat(64, 1).astype(np.uint8), "L").save(
        tmp_path / "style_mask.png")
    st = Stylizer(optimize={"steps": 1}, size=48, encoder=random_encoder, iterations=1)
    results = {name: st(path, style, tmp_path / "content_mask.png", tmp_path / "style_mask.png")
               for name, path in (("rotated", rotated), ("upright", tmp_path / "upright.png"))}
    a, b = results["rotated"].image, results["upright"].image
    assert a.shape == b.shape == (3, 48, 48)
    assert results["rotated"].metadata()["size"] == results["upright"].metadata()["size"] == [48, 48]
    assert "EXIF orientation" in results["rotated"].input_conversions[str(rotated)]
    # the same picture the same way up: far closer to the upright result than that result turned or flipped
    assert all(_mean_diff(a, b) < 0.5 * _mean_diff(a, other) for other in (b.transpose(-1, -2), b.flip(-1), b.flip(-2)))

"""Large photos decoded reduced when the caller's target is small (genkit.core.reading.read_image(reduce_to=))."""

import numpy as np
import pytest
from PIL import Image

from fixtures.odd_inputs import base_rgb
from genkit.core.reading import read_image


def _photo(tmp_path, ext, w=1200, h=900, **save):
    path = tmp_path / f"big{ext}"
    Image.fromarray(base_rgb(w, h)).save(path, **save)
    return path


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_large_photo_is_reduced_to_at_least_twice_the_target_and_keeps_its_content(tmp_path, ext):
    path = _photo(tmp_path, ext)
    full = read_image(path)
    small = read_image(path, reduce_to=64)
    assert 128 <= min(small.size) < 256 and small.mode == "RGB"
    assert abs(small.size[0] / small.size[1] - 4 / 3) < 0.02  # aspect ratio kept
    # what the caller then does (an antialiased resize to its target) gives the same picture as from the full decode
    target = (85, 64)
    reference = np.asarray(full.resize(target, Image.LANCZOS), dtype=np.float64)
    assert np.abs(np.asarray(small.resize(target, Image.LANCZOS), dtype=np.float64) - reference).mean() < 2.5
    assert read_image(path, reduce_to=500).size == full.size  # no integer factor keeps 1000 px: unchanged


def test_an_exif_rotated_jpeg_is_reduced_and_still_turned_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = _photo(tmp_path, ".jpg", 1200, 800, exif=exif.tobytes())
    full, small = read_image(path), read_image(path, reduce_to=50)
    assert full.size == (800, 1200) and small.size[1] > small.size[0]
    assert "EXIF orientation 6 applied" in small.info["genkit.conversion"]


@pytest.mark.parametrize("orientation,turned", [(None, False), (1, False), (3, False), (5, True), (6, True),
                                                (8, True)])
def test_upright_size_is_the_size_read_image_gives_without_reduction(tmp_path, orientation, turned):
    from genkit.core.reading import METRICS, upright_size

    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    path = _photo(tmp_path, ".jpg", 803, 802, exif=exif.tobytes())  # decoded at 1/8 it is square: 101x101
    assert read_image(path, reduce_to=48).size == (101, 101)
    assert upright_size(path) == read_image(path).size == ((802, 803) if turned else (803, 802))
    assert upright_size(path, METRICS) == (803, 802)  # the metrics profile applies no EXIF orientation

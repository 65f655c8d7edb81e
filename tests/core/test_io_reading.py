"""One image-reading policy: every ordinary file becomes 8-bit RGB (recorded), strict mode refuses, broken files
get one line naming the file, and metric folders are read exactly as torch-fidelity reads them."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest
import torch
from fixtures.odd_inputs import BROKEN, HAS_ALPHA, VALID, W, H, base_alpha, base_rgb, expected_photo, problem_of
from fixtures.odd_inputs import tolerance, write_broken, write_valid
from PIL import Image

from genkit.core.errors import DataError
from genkit.core.reading import METRICS, PHOTOS, ReadPolicy, conversion_note, read_image, read_label_map


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return write_valid(tmp_path_factory.mktemp("valid"))


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return write_broken(tmp_path_factory.mktemp("broken"))


def _source_mode(path) -> str:
    with Image.open(path) as img:
        return img.mode


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_ordinary_file_reads_as_8bit_rgb_by_default(valid, kind):
    img = read_image(valid[kind])
    assert img.mode == "RGB" and img.size == (W, H)  # upright: EXIF orientation applied
    diff = np.abs(np.asarray(img, dtype=np.int16) - expected_photo(kind, valid[kind]).astype(np.int16))
    assert diff.max() <= tolerance(kind), f"{kind}: max difference {diff.max()}"


@pytest.mark.parametrize("kind", sorted(VALID))
def test_the_conversion_is_recorded(valid, kind):
    img = read_image(valid[kind])
    note = conversion_note(img)
    mode = _source_mode(valid[kind])
    rotated = kind.startswith("exif")
    if mode == "RGB" and not rotated:
        assert note is None
        return
    assert note
    if mode != "RGB":
        assert note.startswith(f"{mode} -> RGB")
    if kind in HAS_ALPHA:
        assert "alpha dropped" in note
    if rotated:
        assert f"EXIF orientation {kind[4]} applied" in note


def test_alpha_can_be_composited_over_white_instead(valid):
    img = np.asarray(read_image(valid["rgba_png"], transparency="white"), dtype=np.float64)
    a = base_alpha()[..., None] / 255.0
    ref = base_rgb() * a + 255.0 * (1 - a)
    assert np.abs(img - ref).max() <= 1.0
    assert (img[H // 4:, : W // 2] == 255).all()  # the fully transparent part is white
    assert "composited over white" in conversion_note(read_image(valid["rgba_png"], transparency="white"))
    with pytest.raises(ValueError, match="transparency"):
        ReadPolicy(transparency="black")


@pytest.mark.parametrize("kind", ["grey_png", "grey_alpha_png", "rgba_png", "palette_png", "cmyk_jpeg", "grey16_png",
                                  "bilevel_png", "rgba_webp"])
def test_strict_mode_refuses_what_it_would_convert(valid, kind):
    path = valid[kind]
    with pytest.raises(DataError) as e:
        read_image(path, strict=True)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert "8-bit RGB" in msg and "strict" in msg
    assert "drop --strict-modes / strict_modes=false to convert it" in msg  # the way out (it said =true)
    # the default accepts it; the strict reading of an RGB file works
    read_image(path)
    assert read_image(valid["rgb_png"], strict=True).mode == "RGB"


@pytest.mark.parametrize("kind", sorted(VALID))
def test_metric_reading_is_exactly_torch_fidelitys(valid, kind):
    """FID/KID inputs are decoded as torch-fidelity (and pytorch-fid, clean-fid) decode them: PIL's
    ``convert("RGB")`` (alpha dropped, no EXIF rotation), so numbers stay comparable."""
    from torch_fidelity.datasets import ImagesPathDataset

    from genkit.metrics.folders import read_uint8

    ours = read_uint8(valid[kind])
    theirs = ImagesPathDataset([str(valid[kind])])[0]
    assert ours.dtype == torch.uint8 and torch.equal(ours, theirs)


def test_metric_reading_records_its_policy():
    assert METRICS.record()["transparency"] == "drop" and METRICS.record()["exif_orientation"] is False
    assert PHOTOS.record()["exif_orientation"] is True
    assert ReadPolicy(strict=True).record()["strict_modes"] is True


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_files_give_one_line_naming_the_file(broken, kind):
    with pytest.raises(DataError) as e:
        read_image(broken[kind])
    msg = str(e.value)
    assert msg.startswith(str(broken[kind]) + ":"), msg
    assert "\n" not in msg and problem_of(kind) in msg, msg
    assert e.value.path == broken[kind]


@pytest.mark.parametrize("kind", ["random_bytes", "empty", "truncated_png", "bomb", "directory", "dangling_link"])
def test_label_maps_get_the_same_broken_file_errors(broken, kind):
    with pytest.raises(DataError) as e:
        read_label_map(broken[kind])
    assert str(e.value).startswith(str(broken[kind])) and problem_of(kind) in str(e.value)


def test_decompression_bomb_is_refused_without_allocating(broken):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="40000x40000"):
        read_image(broken["bomb"])
    assert time.perf_counter() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # decoding would need 4.8 GB


def test_minimum_side_is_a_parameter(valid):
    with pytest.raises(DataError, match=r"40x32 px, too small.* at least 33"):
        read_image(valid["rgb_png"], min_side=33)
    assert read_image(valid["rgb_png"], min_side=32).size == (W, H)


def test_label_maps_stay_strict(tmp_path, valid):
    with pytest.raises(DataError, match="label map must be a single-channel 8-bit image"):
        read_label_map(valid["rgba_png"])
    with pytest.raises(DataError, match="16-bit"):
        read_label_map(valid["grey16_png"])


@pytest.mark.parametrize("suffix, frames", [(".gif", 3), (".tif", 2), (".webp", 3)])
def test_a_multi_frame_file_reads_its_first_frame_and_says_so(tmp_path, suffix, frames):
    """An animated GIF/WebP or a multi-page TIFF: the first frame is read, and the note records that there were more
    (it went into the outputs' input_conversions silently before)."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)][:frames]
    images = [Image.new("RGB", (W, H), c) for c in colours]
    path = tmp_path / f"many{suffix}"
    images[0].save(path, save_all=True, append_images=images[1:], lossless=True)
    for policy in (PHOTOS, METRICS):
        img = read_image(path, policy)
        assert np.abs(np.asarray(img, dtype=np.int16) - colours[0]).max() <= 2
        assert f"first of {frames} frames" in conversion_note(img), conversion_note(img)
    single = tmp_path / f"one{suffix}"
    images[0].save(single)
    assert "frames" not in (conversion_note(read_image(single)) or "")


def test_a_folder_lists_every_image_format_a_single_file_reads(tmp_path):
    from genkit.core.reading import IMAGE_EXTENSIONS, list_images

    img = Image.fromarray(base_rgb())
    for name in ("a.gif", "b.ppm", "c.PGM", "d.tga", "e.png", "f.jpeg", "g.TIF", "h.webp", "i.bmp"):
        img.save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    listed = list_images(tmp_path)
    assert [p.name for p in listed] == ["a.gif", "b.ppm", "c.PGM", "d.tga", "e.png", "f.jpeg", "g.TIF", "h.webp",
                                        "i.bmp"]
    assert all(read_image(p).size == (W, H) for p in listed)
    # the one list of extensions names only formats this Pillow decodes
    registered = Image.registered_extensions()
    assert all(registered.get(ext) in Image.OPEN for ext in IMAGE_EXTENSIONS), IMAGE_EXTENSIONS

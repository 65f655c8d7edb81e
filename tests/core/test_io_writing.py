"""Outputs are what their names say, land atomically with the umask's permissions, and bad output paths are
refused before any work."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.core.errors import ConfigError
from genkit.core.checkpoints import atomic_torch_save
from genkit.core.files import atomic_write_bytes, atomic_write_json
from genkit.core.metadata import read_metadata
from genkit.core.outputs import check_output_dir, check_output_file
from genkit.core.saving import IMAGE_FORMATS, save_image, save_label_map


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("ext, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                                      (".tif", "TIFF"), (".tiff", "TIFF"), (".bmp", "BMP"), (".PNG", "PNG")])
def test_the_format_follows_the_extension(tmp_path, ext, fmt):
    arr = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    path = save_image(Image.fromarray(arr), tmp_path / f"out{ext}", metadata={"seed": 3, "name": "café"})
    with Image.open(path) as img:
        assert img.format == fmt and img.size == (16, 12) and img.mode == "RGB"
    assert read_metadata(path) == {"seed": 3, "name": "café"}
    sidecar = path.with_name(path.name + ".json")
    assert sidecar.exists() == (fmt != "PNG")  # PNG keeps it in a text chunk, the others in a JSON sidecar
    if fmt in ("PNG", "TIFF", "BMP"):  # lossless formats round-trip exactly
        assert np.array_equal(np.asarray(Image.open(path)), arr)


def test_unknown_extensions_are_refused_before_writing(tmp_path):
    for name in ("out.gif", "out.xyz", "out"):
        with pytest.raises(ConfigError, match="extension"):
            save_image(torch.rand(3, 4, 4), tmp_path / name)
        with pytest.raises(ConfigError, match=r"\.png.*\.jpg.*\.webp"):
            check_output_file(tmp_path / name, "-o", IMAGE_FORMATS)
    assert list(tmp_path.iterdir()) == []
    assert set(IMAGE_FORMATS) == {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


def test_label_maps_are_png_only(tmp_path):
    with pytest.raises(ConfigError, match="PNG"):
        save_label_map(np.zeros((4, 4), np.uint8), tmp_path / "mask.jpg")
    save_label_map(np.ones((4, 4), np.uint8), tmp_path / "mask.png")
    assert np.asarray(Image.open(tmp_path / "mask.png")).max() == 1


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_every_writer_respects_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    files = [
        save_image(torch.rand(3, 8, 8), tmp_path / "a.png", metadata={"x": 1}),
        save_image(torch.rand(3, 8, 8), tmp_path / "a.jpg", metadata={"x": 1}),
        tmp_path / "a.jpg.json",
        save_label_map(np.zeros((8, 8), np.uint8), tmp_path / "m.png"),
        atomic_write_json(tmp_path / "r.json", {"fid": 1.0}),
        atomic_torch_save({"w": torch.ones(2)}, tmp_path / "c.ckpt"),
        atomic_write_bytes(tmp_path / "sub" / "s.npz", b"1234"),
    ]
    from genkit.metrics.stats_cache import FIDStats, save_npz

    files.append(save_npz(FIDStats(np.zeros(2), np.eye(2), 2), tmp_path / "stats.npz"))
    for f in files:
        assert _mode(f) == expected, f"{f.name}: {oct(_mode(f))}"
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind


def test_replacing_a_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "shared.json"
    target.write_text("{}")
    os.chmod(target, 0o664)
    atomic_write_json(target, {"a": 1})
    assert _mode(target) == 0o664 and json.loads(target.read_text()) == {"a": 1}


def test_output_paths_are_checked_before_any_work(tmp_path):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="dir.png: --out is an existing folder"):
        check_output_file(tmp_path / "dir.png", "--out", IMAGE_FORMATS)
    with pytest.raises(ConfigError, match="afile is a file"):
        check_output_file(tmp_path / "afile" / "x.png", "--out", IMAGE_FORMATS)
    with pytest.raises(ConfigError, match="afile: --out is a file, not a folder"):
        check_output_dir(tmp_path / "afile", "--out")
    with pytest.raises(ConfigError, match="only .npz"):
        check_output_file(tmp_path / "ref.txt", "--output", (".npz",), "only .npz")
    assert check_output_file(tmp_path / "new" / "deeper" / "x.webp", "--out", IMAGE_FORMATS).suffix == ".webp"
    assert check_output_dir(tmp_path / "new" / "folder", "--out").name == "folder"
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            check_output_file(ro / "x.png", "--out", IMAGE_FORMATS)
    finally:
        os.chmod(ro, 0o755)

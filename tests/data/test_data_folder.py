"""Generic images/ + masks/ + schema folders: every kind of bad input, and skipping with a report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.data_layouts import make_generic_folder, write_garbage, write_labels, write_mode, write_truncated

from genkit.data.datasets import GenericFolderDataset
from genkit.data.schemas import CELEBAMASK19, HELEN11, save_schema
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import ReadPolicy


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "faces"
    names = make_generic_folder(root)
    return root, names


def _read_all(root, **kw):
    ds = GenericFolderDataset(root, size=32, **kw)
    return [ds[i] for i in range(len(ds))]


def test_reads_samples_in_the_schema(folder):
    root, names = folder
    samples = _read_all(root)
    assert [s["name"] for s in samples] == names
    assert all(s["mask"].max() < HELEN11.num_classes for s in samples)


@pytest.mark.parametrize("writer, message", [
    (write_truncated, "cannot be decoded as an image (truncated or corrupt"),
    (write_garbage, "cannot be decoded as an image (unknown or corrupt format)"),
    (lambda p: write_mode(p, "L"), "image is grayscale (mode L), not 8-bit RGB, and strict mode refuses"),
    (lambda p: write_mode(p, "RGBA"), "image is RGBA (has an alpha channel), not 8-bit RGB"),
    (lambda p: write_mode(p, "I;16"), "image is 16-bit grayscale"),
])
def test_bad_images_are_named_with_their_problem(folder, writer, message):
    root, names = folder
    bad = writer(root / "images" / f"{names[2]}.png")
    with pytest.raises(DataError) as e:
        _read_all(root, reading=ReadPolicy(strict=True))  # truncated files fail either way; modes only when strict
    assert e.value.path == bad and message in str(e.value)
    assert str(e.value).startswith(str(bad))


def test_grayscale_rgba_and_16bit_are_converted_by_default(folder):
    root, names = folder
    write_mode(root / "images" / f"{names[0]}.png", "L")
    write_mode(root / "images" / f"{names[1]}.png", "RGBA")
    write_mode(root / "images" / f"{names[2]}.png", "I;16")
    samples = _read_all(root)
    assert len(samples) == 4 and all(s["image"].shape == (3, 32, 32) for s in samples)
    grey = samples[0]["image"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey replicated


def test_strict_modes_from_the_data_config(folder):
    from types import SimpleNamespace

    from genkit.data.sources import build_face_dataset
    from genkit.data.transforms import PairedTransform

    root, names = folder
    write_mode(root / "images" / f"{names[1]}.png", "RGBA")
    hp = SimpleNamespace(source="folder", root=str(root), strict_modes=True, transparency="drop", on_bad_file="skip",
                         val_fraction=0.0, test_fraction=0.0, seed=0, image_size=32, n_synthetic=0)
    ds = build_face_dataset(hp, "train", PairedTransform(32, HELEN11), HELEN11)
    assert len(ds) == 3 and "RGBA" in ds.skipped[0][1] and "strict" in ds.skipped[0][1]
    hp.strict_modes = False
    assert len(build_face_dataset(hp, "train", PairedTransform(32, HELEN11), HELEN11)) == 4
    hp.transparency = "black"
    with pytest.raises(ConfigError, match="data.transparency"):
        build_face_dataset(hp, "train", PairedTransform(32, HELEN11), HELEN11)


def test_mask_problems(folder):
    root, names = folder
    mask = root / "masks" / f"{names[1]}.png"
    write_labels(mask, np.zeros((32, 30), dtype=np.int64))
    with pytest.raises(DataError, match=f"mask is 30x32 but its image {names[1]}.png is 32x32") as e:
        _read_all(root)
    assert e.value.path == mask
    labels = np.zeros((32, 32), dtype=np.int64)
    labels[0, :3] = [11, 12, 40]
    write_labels(mask, labels)
    with pytest.raises(DataError, match=r"label values 11, 12, 40 are outside the schema \(0..10\)") as e:
        _read_all(root)
    assert e.value.path == mask
    write_mode(mask, "RGB")
    with pytest.raises(DataError, match="label map must be a single-channel 8-bit image"):
        _read_all(root)
    write_mode(mask, "I;16")
    with pytest.raises(DataError, match="16-bit"):
        _read_all(root)
    mask.unlink()
    with pytest.raises(DataError, match="has no mask") as e:
        GenericFolderDataset(root)
    assert e.value.path.name == f"{names[1]}.png"


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DataError, match="dataset folder does not exist") as e:
        GenericFolderDataset(tmp_path / "nowhere")
    assert e.value.path == tmp_path / "nowhere"
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="folder contains no images") as e:
        GenericFolderDataset(tmp_path / "empty")
    assert e.value.path == tmp_path / "empty" / "images"
    make_generic_folder(tmp_path / "nomasks")
    for p in (tmp_path / "nomasks" / "masks").iterdir():
        p.unlink()
    (tmp_path / "nomasks" / "masks").rmdir()
    with pytest.raises(DataError, match="masks folder does not exist"):
        GenericFolderDataset(tmp_path / "nomasks")


def test_wrong_schema_files(folder):
    root, _ = folder
    schema = root / "schema.json"
    schema.write_text("{not json")
    with pytest.raises(DataError, match="schema file cannot be parsed") as e:
        GenericFolderDataset(root)
    assert e.value.path == schema
    schema.write_text('{"name": "x", "labels": ["a", "b"]}')
    with pytest.raises(DataError, match="must be a mapping with a 'classes' list"):
        GenericFolderDataset(root)
    schema.write_text('{"classes": {"0": "bg", "2": "face"}}')
    with pytest.raises(DataError, match="without gaps"):
        GenericFolderDataset(root)
    schema.write_text('{"classes": ["bg", "skin", "hair"]}')  # fewer classes than the masks use
    with pytest.raises(DataError, match=r"outside the schema \(0..2\)") as e:
        _read_all(root)
    assert e.value.path.parent.name == "masks"
    schema.unlink()
    with pytest.raises(DataError, match="no schema file"):
        GenericFolderDataset(root)


def test_skip_validates_up_front_and_reports_names(folder, caplog):
    root, names = folder
    write_truncated(root / "images" / f"{names[0]}.png")
    (root / "masks" / f"{names[3]}.png").unlink()  # an image without mask is skipped too
    ds = GenericFolderDataset(root, on_bad_file="skip", size=32)
    assert len(ds) == 2 and [ds[i]["name"] for i in range(2)] == names[1:3]
    assert [n for n, _ in ds.skipped] == [names[0], names[3]]
    assert ds.skip_report() == f"skipped 2 bad samples: {names[0]}, {names[3]}"
    assert "skipped 2 of 4 samples as bad" in caplog.text and f"{names[3]}.png: file does not exist" in caplog.text


def test_skip_with_every_file_bad_is_an_error_and_option_is_checked(folder):
    root, names = folder
    for n in names:
        write_garbage(root / "images" / f"{n}.png")
    with pytest.raises(DataError, match="all 4 samples are bad"):
        GenericFolderDataset(root, on_bad_file="skip")
    with pytest.raises(ConfigError, match="on_bad_file must be one of error, skip"):
        GenericFolderDataset(root, on_bad_file="ignore")


def test_schema_comes_from_the_schema_file(folder):
    root, _ = folder
    save_schema(CELEBAMASK19, root / "schema.json")
    ds = GenericFolderDataset(root, size=32)
    assert ds.schema is not HELEN11 and ds.schema.num_classes == 19

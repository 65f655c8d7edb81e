"""Helen parsing in its public layouts: reading, official splits, Smith per-class masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.data_layouts import HELEN_SIZE, helen_labels, helen_sample, make_helen, write_labels, write_mode
from PIL import Image

from genkit.data.helen import HelenDataset, detect_helen_layout, merge_class_masks, read_split_list
from genkit.core.errors import DataError
from genkit.core.reading import ReadPolicy

LAYOUTS = ("helenstar", "split_dirs", "flat", "smith")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_reads_with_exact_labels(tmp_path, layout):
    root = tmp_path / "helen"
    names = make_helen(root, layout)
    assert detect_helen_layout(root) == layout
    ds = HelenDataset(root, "test", size=HELEN_SIZE)
    assert ds.names == names["test"]
    for i, name in enumerate(ds.names):
        sample = ds[i]
        assert sample["name"] == name and sample["image"].shape == (3, HELEN_SIZE, HELEN_SIZE)
        offset = sum(len(v) for k, v in names.items() if k != "test")
        _, truth = helen_sample(offset + i)  # the labels the fixture drew for this face
        np.testing.assert_array_equal(sample["mask"].numpy(), truth)
        if layout != "smith":
            np.testing.assert_array_equal(helen_labels(root, layout, "test", name), truth)


@pytest.mark.parametrize("layout", ("split_dirs", "flat", "smith"))
def test_official_splits_are_used_when_present(tmp_path, layout):
    names = make_helen(tmp_path / "h", layout)
    for split in ("train", "val", "test"):
        assert HelenDataset(tmp_path / "h", split).names == names[split]


def test_helenstar_has_no_val_so_val_is_a_seeded_part_of_train(tmp_path):
    names = make_helen(tmp_path / "h", "helenstar")
    train = HelenDataset(tmp_path / "h", "train", val_fraction=0.25, seed=1)
    val = HelenDataset(tmp_path / "h", "val", val_fraction=0.25, seed=1)
    assert len(val) == 1 and len(train) == 3
    assert sorted(train.names + val.names) == sorted(names["train"])
    assert HelenDataset(tmp_path / "h", "val", val_fraction=0.25, seed=1).names == val.names
    assert HelenDataset(tmp_path / "h", "test").names == names["test"]


def test_flat_folder_without_lists_gets_a_seeded_disjoint_split(tmp_path):
    make_helen(tmp_path / "h", "flat", {"train": 8})
    (tmp_path / "h" / "train.txt").unlink()
    parts = {s: HelenDataset(tmp_path / "h", s, val_fraction=0.25, test_fraction=0.25).names
             for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [4, 2, 2]
    assert len(set(sum(parts.values(), []))) == 8


def test_smith_per_class_masks_merge_by_argmax(tmp_path):
    d = tmp_path / "labels" / "x_1"
    d.mkdir(parents=True)
    for k in range(11):
        m = np.zeros((2, 3), dtype=np.uint8)
        m[0, 0] = {0: 10, 4: 200, 1: 120}.get(k, 0)  # left eye is brightest
        m[1, 2] = {1: 90, 10: 90}.get(k, 0)  # a tie goes to the lower class
        Image.fromarray(m).save(d / f"x_1_lbl{k:02d}.png")
    labels = merge_class_masks(d)
    assert labels[0, 0] == 4 and labels[1, 2] == 1 and labels[0, 1] == 0


def test_split_lists_accept_smith_and_plain_lines(tmp_path):
    p = tmp_path / "list.txt"
    p.write_text("1 , 100032540_1\n2 , 10405146_1\n\n3,x.jpg\nplain_name\n")
    assert read_split_list(p) == ["100032540_1", "10405146_1", "x", "plain_name"]


# ------------------------------------------------------------------------------------------- bad input


def test_label_values_outside_helen_are_named(tmp_path):
    names = make_helen(tmp_path / "h", "helenstar")
    bad = tmp_path / "h" / "test" / f"{names['test'][1]}_label.png"
    labels = np.zeros((HELEN_SIZE, HELEN_SIZE), dtype=np.int64)
    labels[3, 3], labels[4, 4] = 11, 255
    write_labels(bad, labels)
    with pytest.raises(DataError, match=r"label values 11, 255 are outside the schema \(0..10\)") as e:
        HelenDataset(tmp_path / "h", "test").load(1)
    assert e.value.path == bad


def test_image_and_label_of_different_sizes(tmp_path):
    names = make_helen(tmp_path / "h", "split_dirs")
    label = tmp_path / "h" / "val" / "labels" / f"{names['val'][0]}.png"
    write_labels(label, np.zeros((HELEN_SIZE, HELEN_SIZE + 8), dtype=np.int64))
    with pytest.raises(DataError, match=f"mask is 40x32 but its image {names['val'][0]}.jpg is 32x32") as e:
        HelenDataset(tmp_path / "h", "val")[0]
    assert e.value.path == label


def test_rgba_image_and_missing_label_are_named(tmp_path):
    names = make_helen(tmp_path / "h", "flat")
    image = tmp_path / "h" / "images" / f"{names['train'][2]}.jpg"
    write_mode(image.with_suffix(".png"), "RGBA")
    image.unlink()
    assert HelenDataset(tmp_path / "h", "train")[2]["image"].shape[0] == 3  # converted by default
    with pytest.raises(DataError, match="RGBA") as e:
        HelenDataset(tmp_path / "h", "train", reading=ReadPolicy(strict=True))[2]
    assert e.value.path.name == f"{names['train'][2]}.png"
    (tmp_path / "h" / "labels" / f"{names['test'][0]}.png").unlink()
    with pytest.raises(DataError, match="has no label map") as e:
        HelenDataset(tmp_path / "h", "test")
    assert names["test"][0] in str(e.value)


def test_missing_smith_class_mask(tmp_path):
    names = make_helen(tmp_path / "h", "smith")
    missing = tmp_path / "h" / "labels" / names["val"][1] / f"{names['val'][1]}_lbl07.png"
    missing.unlink()
    with pytest.raises(DataError, match="file does not exist") as e:
        HelenDataset(tmp_path / "h", "val")[1]
    assert e.value.path == missing


def test_empty_missing_and_unrecognised_folders(tmp_path):
    with pytest.raises(DataError, match="Helen folder does not exist"):
        HelenDataset(tmp_path / "nowhere")
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(DataError, match="not a Helen parsing folder") as e:
        HelenDataset(tmp_path / "odd")
    assert e.value.path == tmp_path / "odd"
    (tmp_path / "empty" / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="folder contains no images") as e:
        HelenDataset(tmp_path / "empty", "train")
    assert e.value.path == tmp_path / "empty" / "train" / "images"


def test_skip_drops_and_reports_bad_samples(tmp_path, caplog):
    names = make_helen(tmp_path / "h", "helenstar")
    (tmp_path / "h" / "train" / f"{names['train'][0]}_image.jpg").write_bytes(b"\xff\xd8\xff garbage")
    write_labels(tmp_path / "h" / "train" / f"{names['train'][3]}_label.png", np.full((4, 4), 3))
    ds = HelenDataset(tmp_path / "h", "train", val_fraction=0.0, on_bad_file="skip")
    assert ds.names == names["train"][1:3]
    assert [n for n, _ in ds.skipped] == [names["train"][0], names["train"][3]]
    assert "cannot be decoded" in ds.skipped[0][1] and "mask is 4x4" in ds.skipped[1][1]
    assert "skipped 2 of 4 samples as bad" in caplog.text

"""CelebAMask-HQ: part-mask merge order, official split, raw and prepared readers, preparation, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from fixtures.data_layouts import (CELEBA_IMAGE, CELEBA_MASK, celeba_photo, expected_celeba_labels,
                                   make_celebamask_raw, snapshot, write_mode, write_truncated)
from PIL import Image

from genkit.data.celebamask import (CelebAMaskHQDataset, CelebAMaskHQRawDataset, merge_part_masks,
                                    prepare_celebamask, raw_index, read_mapping, split_of)
from genkit.data.schemas import CELEBAMASK19, CELEBAMASK_TO_HELEN, HELEN11, save_schema
from genkit.data.transforms import PairedTransform
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import ReadPolicy

C = CELEBAMASK19.index


@pytest.fixture
def raw(tmp_path):
    return make_celebamask_raw(tmp_path)


@pytest.fixture
def prepared(raw, tmp_path):
    prepare_celebamask(raw.src, tmp_path / "prepared", progress=False)
    return tmp_path / "prepared"


# ------------------------------------------------------------------------------------------ merge + split


def test_merge_follows_the_documented_overwrite_order(raw):
    labels = merge_part_masks(raw.src, 0)
    assert labels.dtype == np.uint8 and labels.shape == (CELEBA_MASK, CELEBA_MASK)
    assert labels[12, 8] == C("l_eye")  # in skin, eye_g and l_eye: l_eye comes last
    assert labels[12, 20] == C("r_eye")
    assert labels[12, 16] == C("eye_g")  # glasses over skin, between the eyes
    assert labels[10, 8] == C("hair")  # hair is merged after l_eye and overwrites it
    assert labels[8, 8] == C("hair")  # ... and the brow
    assert labels[15, 15] == C("nose")
    assert labels[22, 14] == C("u_lip")  # u_lip overwrites mouth
    assert labels[23, 14] == C("l_lip")  # l_lip overwrites mouth
    assert labels[31, 15] == C("cloth")  # cloth overwrites neck
    assert labels[28, 15] == C("neck")
    assert labels[15, 3] == C("l_ear")
    assert labels[20, 30] == C("background")
    for image_id in raw.ids:
        np.testing.assert_array_equal(merge_part_masks(raw.src, image_id), expected_celeba_labels(image_id))


def test_missing_part_files_mean_absent_parts(raw):
    labels = merge_part_masks(raw.src, 2001)  # no hair, no ear files for this face
    assert C("hair") not in labels and C("l_ear") not in labels
    assert labels[12, 8] == C("l_eye")
    assert merge_part_masks(raw.src, 1)[13, 16] == C("skin")  # no glasses file for face 1


def test_mapping_file_and_official_split(raw):
    mapping = read_mapping(raw.src / "CelebA-HQ-to-CelebA-mapping.txt")
    assert mapping[4002] == 182638 and len(mapping) == 7
    assert [split_of(i) for i in (0, 162770, 162771, 182637, 182638)] == ["train", "train", "val", "val", "test"]
    images, splits, unmapped = raw_index(raw.src)
    assert splits == raw.splits and not unmapped  # the mapping row without a photo is ignored
    assert images[2001].name == "2001.jpg"


# --------------------------------------------------------------------------------------------- readers


def test_raw_reader_merges_on_the_fly_with_official_split(raw):
    for split, ids in raw.splits.items():
        ds = CelebAMaskHQRawDataset(raw.src, split, target_schema="celebamask19", size=CELEBA_MASK)
        assert ds.names == [str(i) for i in ids]
        for i, image_id in enumerate(ids):
            sample = ds[i]
            assert sample["name"] == str(image_id)
            np.testing.assert_array_equal(sample["mask"].numpy(), expected_celeba_labels(image_id))


def test_photo_is_scaled_to_the_mask_size_not_a_mismatch(raw):
    ds = CelebAMaskHQRawDataset(raw.src, "train", target_schema="celebamask19")
    image, labels = ds.load(0)
    assert image.size == (CELEBA_MASK, CELEBA_MASK) and labels.shape == (CELEBA_MASK, CELEBA_MASK)
    # a 2x downscale of a photo with a left and right half keeps the halves
    ref = np.asarray(celeba_photo(0).resize((CELEBA_MASK, CELEBA_MASK), Image.BICUBIC), dtype=float)
    assert np.abs(np.asarray(image, dtype=float) - ref).mean() < 4
    assert CELEBA_IMAGE == 2 * CELEBA_MASK


def test_prepared_reader_maps_to_helen_by_default(prepared, raw):
    ds = CelebAMaskHQDataset(prepared, "val", size=CELEBA_MASK)
    assert ds.schema is HELEN11 and len(ds) == 2
    m = ds[1]["mask"].numpy()  # id 2001
    np.testing.assert_array_equal(m, CELEBAMASK_TO_HELEN.apply(expected_celeba_labels(2001)))
    assert m[12, 8] == HELEN11.index("left_eye") and m.max() < HELEN11.num_classes
    native = CelebAMaskHQDataset(prepared, "val", target_schema="celebamask19", size=CELEBA_MASK)
    np.testing.assert_array_equal(native[1]["mask"].numpy(), expected_celeba_labels(2001))
    with pytest.raises(ConfigError, match="no declared mapping"):
        CelebAMaskHQDataset(prepared, "val", target_schema=CELEBAMASK19.__class__("x", ("a", "b")))


def test_flipped_sample_swaps_left_right_and_mirrors_the_photo(prepared):
    plain = CelebAMaskHQDataset(prepared, "train", target_schema="celebamask19", size=CELEBA_MASK)
    flip = CelebAMaskHQDataset(prepared, "train", target_schema="celebamask19",
                               transform=PairedTransform(CELEBA_MASK, CELEBAMASK19, hflip=True))
    random.seed(0)
    a = plain[0]
    flipped = None
    for _ in range(20):  # the flip has probability 1/2
        b = flip[0]
        if not torch.equal(b["mask"], a["mask"]):
            flipped = b
            break
    assert flipped is not None
    torch.testing.assert_close(flipped["image"], a["image"].flip(-1))
    m, f = a["mask"].numpy(), flipped["mask"].numpy()
    assert m[12, 8] == C("l_eye") and f[12, CELEBA_MASK - 1 - 8] == C("r_eye")
    assert m[12, 20] == C("r_eye") and f[12, CELEBA_MASK - 1 - 20] == C("l_eye")
    assert m[15, 3] == C("l_ear") and f[15, CELEBA_MASK - 1 - 3] == C("r_ear")
    assert f[28, CELEBA_MASK - 1 - 15] == C("neck")


# ----------------------------------------------------------------------------------------- preparation


def test_prepare_writes_documented_layout_atomically_and_leaves_src_alone(raw, tmp_path):
    before = snapshot(raw.src)
    report = prepare_celebamask(raw.src, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert snapshot(raw.src) == before
    assert report.counts == {"train": 2, "val": 2, "test": 2} and not report.skipped
    for split, ids in raw.splits.items():
        assert (out / "splits" / f"{split}.txt").read_text().split() == [str(i) for i in ids]
    for image_id in raw.ids:
        assert (out / "images" / f"{image_id}.jpg").read_bytes() == raw.image(image_id).read_bytes()
        mask = Image.open(out / "masks" / f"{image_id}.png")
        assert mask.mode == "L"
        np.testing.assert_array_equal(np.asarray(mask), expected_celeba_labels(image_id))
    schema = json.loads((out / "schema.json").read_text())
    assert schema["name"] == "celebamask19" and schema["classes"] == list(CELEBAMASK19.classes)
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["counts"] == report.counts and manifest["skipped"] == []
    assert not list(out.rglob("*.tmp"))  # no temporary files left behind


def test_prepare_with_size_and_workers(raw, tmp_path):
    prepare_celebamask(raw.src, tmp_path / "out", size=16, workers=2, progress=False)
    img = Image.open(tmp_path / "out" / "images" / "2001.jpg")
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "2001.png"))
    assert img.size == (16, 16) and mask.shape == (16, 16)
    assert set(np.unique(mask)) <= set(np.unique(expected_celeba_labels(2001)))


def test_prepare_refuses_an_output_inside_the_source(raw):
    with pytest.raises(ConfigError, match="inside the source"):
        prepare_celebamask(raw.src, raw.src / "prepared", progress=False)


# ------------------------------------------------------------------------------------------- bad input


def test_truncated_photo_is_named(raw, tmp_path):
    write_truncated(raw.image(2001))
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        prepare_celebamask(raw.src, tmp_path / "out", progress=False)
    assert e.value.path == raw.image(2001)
    assert not (tmp_path / "out" / "prepare.json").exists()  # an aborted run is not marked finished


def test_grayscale_photo_and_16bit_part_mask_are_named(raw, tmp_path):
    write_mode(raw.image(2), "L", CELEBA_IMAGE)
    assert CelebAMaskHQRawDataset(raw.src, "val").load(0)[0].mode == "RGB"  # converted by default
    with pytest.raises(DataError, match="grayscale") as e:
        CelebAMaskHQRawDataset(raw.src, "val", reading=ReadPolicy(strict=True)).load(0)
    assert "2.jpg" in str(e.value)
    write_mode(raw.part(4003, "nose"), "I;16", CELEBA_MASK)
    with pytest.raises(DataError, match="mode I;16") as e:
        merge_part_masks(raw.src, 4003)
    assert "04003_nose.png" in str(e.value)


def test_part_masks_of_different_sizes(raw):
    Image.new("L", (CELEBA_MASK + 4, CELEBA_MASK)).save(raw.part(0, "hair"))
    with pytest.raises(DataError, match="part mask is 36x32 but 00000_skin.png is 32x32") as e:
        merge_part_masks(raw.src, 0)
    assert e.value.path == raw.part(0, "hair")


def test_photo_with_another_aspect_ratio_than_its_masks(raw, tmp_path):
    write_mode(raw.image(1), "RGB", (CELEBA_IMAGE, CELEBA_IMAGE // 4))
    with pytest.raises(DataError, match="mask is 32x32 but its image 1.jpg is 64x16"):
        CelebAMaskHQRawDataset(raw.src, "train").load(1)
    with pytest.raises(DataError, match="different aspect ratio"):
        prepare_celebamask(raw.src, tmp_path / "out", progress=False)


def test_image_without_any_part_mask(raw):
    for p in raw.part(4002, "skin").parent.glob("04002_*.png"):
        p.unlink()
    with pytest.raises(DataError, match="no part masks for image 4002"):
        merge_part_masks(raw.src, 4002)


def test_missing_or_empty_folders_and_mapping(raw, tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        CelebAMaskHQRawDataset(tmp_path / "nowhere", "train")
    assert "nowhere" in str(e.value)
    (raw.src / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(DataError, match="mapping file does not exist"):
        raw_index(raw.src)
    empty = tmp_path / "empty"
    (empty / "CelebA-HQ-img").mkdir(parents=True)
    with pytest.raises(DataError, match="contains no images") as e:
        raw_index(empty)
    assert "CelebA-HQ-img" in str(e.value)


def test_bad_mapping_line_and_unlisted_photo(raw):
    mapping = raw.src / "CelebA-HQ-to-CelebA-mapping.txt"
    mapping.write_text(mapping.read_text().replace("2001 182637", "2001 x182637"))
    with pytest.raises(DataError, match="line 5: expected 'idx orig_idx orig_file'"):
        read_mapping(mapping)
    mapping.write_text("\n".join(line for line in mapping.read_text().splitlines() if not line.startswith("2001 ")))
    with pytest.raises(DataError, match="image 2001 is not listed in") as e:
        raw_index(raw.src)
    assert e.value.path.name == "2001.jpg"


def test_wrong_schema_file_and_missing_split_in_prepared_folder(prepared):
    save_schema(HELEN11, prepared / "schema.json")
    with pytest.raises(DataError, match="wrong schema file: it declares 'helen11' with 11 classes") as e:
        CelebAMaskHQDataset(prepared, "train")
    assert e.value.path == prepared / "schema.json"
    save_schema(CELEBAMASK19, prepared / "schema.json")
    (prepared / "splits" / "test.txt").unlink()
    with pytest.raises(DataError, match="split file does not exist") as e:
        CelebAMaskHQDataset(prepared, "test")
    assert e.value.path.name == "test.txt"


def test_mask_values_outside_the_schema_in_prepared_folder(prepared):
    labels = expected_celeba_labels(0)
    labels[0, 0] = 25
    Image.fromarray(labels.astype(np.uint8)).save(prepared / "masks" / "0.png")
    with pytest.raises(DataError, match=r"label values 25 are outside the schema \(0..18\)") as e:
        CelebAMaskHQDataset(prepared, "train")[0]
    assert e.value.path.name == "0.png"


# ------------------------------------------------------------------------------------------------ skip


def test_prepare_skips_and_reports_bad_images(raw, tmp_path, caplog):
    write_truncated(raw.image(2001))
    Image.new("L", (8, 8)).save(raw.part(4003, "hair"))
    report = prepare_celebamask(raw.src, tmp_path / "out", on_bad_file="skip", progress=False)
    assert sorted(n for n, _ in report.skipped) == ["2001", "4003"]
    assert report.counts == {"train": 2, "val": 1, "test": 1}
    assert (tmp_path / "out" / "splits" / "val.txt").read_text().split() == ["2"]
    assert "skipped 2 bad: 2001, 4003" in report.summary()
    assert "skipped 2 bad images" in caplog.text and "2001.jpg" in caplog.text
    manifest = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert [s["name"] for s in manifest["skipped"]] == ["2001", "4003"]


def test_readers_skip_bad_samples_up_front(raw, prepared, caplog):
    write_truncated(raw.image(2001))
    ds = CelebAMaskHQRawDataset(raw.src, "val", on_bad_file="skip")
    assert ds.names == ["2"] and [n for n, _ in ds.skipped] == ["2001"]
    assert "skipped 1 of 2 samples as bad" in caplog.text and "2001.jpg" in caplog.text
    (prepared / "masks" / "4003.png").unlink()
    ds = CelebAMaskHQDataset(prepared, "test", on_bad_file="skip")
    assert len(ds) == 1 and ds.skipped[0][0] == "4003" and "4003.png: file does not exist" in ds.skipped[0][1]
    assert ds.skip_report() == "skipped 1 bad samples: 4003"
    with pytest.raises(DataError, match="4003.png: file does not exist"):
        CelebAMaskHQDataset(prepared, "test")[1]

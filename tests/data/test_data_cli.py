"""``genkit data prepare|check``: progress bar, outputs, and one clear error line (no traceback) on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.data_layouts import (expected_celeba_labels, make_celebamask_raw, make_generic_folder, make_helen,
                                   snapshot, write_labels, write_mode, write_truncated)
from PIL import Image

from genkit.cli import main
from genkit.core.errors import DataError


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("genkit: error: ")
    return lines[0]


def test_prepare_celebamask_hq_with_progress_bar(tmp_path, capsys):
    raw = make_celebamask_raw(tmp_path)
    before = snapshot(raw.src)
    rc = main(["data", "prepare", "celebamask-hq", "--src", str(raw.src), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "CelebAMask-HQ: 100%" in err and "6/6" in err  # the tqdm bar
    assert "prepared 6 CelebAMask-HQ images (train 2, val 2, test 2)" in out
    assert snapshot(raw.src) == before
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "masks" / "4003.png")),
                                  expected_celeba_labels(4003))
    assert json.loads((tmp_path / "out" / "prepare.json").read_text())["counts"]["test"] == 2


def test_prepare_bad_photo_gives_one_line_and_nonzero(tmp_path, capsys):
    raw = make_celebamask_raw(tmp_path)
    write_truncated(raw.image(4002))
    rc = main(["data", "prepare", "celebamask-hq", "--src", str(raw.src), "--out", str(tmp_path / "out"),
               "--no-progress"])
    assert rc != 0
    line = _error_line(capsys)
    assert "4002.jpg" in line and "truncated or corrupt" in line


def test_prepare_skip_reports_count_and_names(tmp_path, capsys):
    raw = make_celebamask_raw(tmp_path)
    write_mode(raw.image(1), "L", 64)  # a grayscale JPEG: converted by default, refused with --strict-modes
    rc = main(["data", "prepare", "celebamask-hq", "--src", str(raw.src), "--out", str(tmp_path / "out"),
               "--on-bad-file", "skip", "--no-progress", "--strict-modes"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "(train 1, val 2, test 2)" in out and "skipped 1 bad: 1" in out
    skipped = json.loads((tmp_path / "out" / "prepare.json").read_text())["skipped"]
    assert skipped[0]["name"] == "1" and "1.jpg: image is grayscale" in skipped[0]["problem"]
    assert (tmp_path / "out" / "splits" / "train.txt").read_text().split() == ["0"]
    assert main(["data", "prepare", "celebamask-hq", "--src", str(raw.src), "--out", str(tmp_path / "out2"),
                 "--no-progress"]) == 0
    assert (tmp_path / "out2" / "splits" / "train.txt").read_text().split() == ["0", "1"]


def test_prepare_missing_source_and_debug_traceback(tmp_path, capsys):
    args = ["data", "prepare", "celebamask-hq", "--src", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]
    assert main(args) != 0
    line = _error_line(capsys)
    assert "missing" in line and "does not exist" in line
    with pytest.raises(DataError):
        main(["--debug"] + args)


@pytest.mark.parametrize("breaker, needle", [
    (lambda r, n: write_truncated(r / "images" / f"{n}.png"), "truncated or corrupt"),
    (lambda r, n: write_mode(r / "images" / f"{n}.png", "L"), "grayscale"),
    (lambda r, n: write_mode(r / "images" / f"{n}.png", "RGBA"), "RGBA"),
    (lambda r, n: write_mode(r / "images" / f"{n}.png", "I;16"), "16-bit"),
    (lambda r, n: write_labels(r / "masks" / f"{n}.png", np.zeros((8, 8))), "mask is 8x8 but its image"),
    (lambda r, n: write_labels(r / "masks" / f"{n}.png", np.full((32, 32), 30)), "label values 30 are outside"),
])
def test_check_folder_stops_at_the_first_bad_file(tmp_path, capsys, breaker, needle):
    names = make_generic_folder(tmp_path / "f", n=3)
    breaker(tmp_path / "f", names[1])
    rc = main(["data", "check", "folder", "--root", str(tmp_path / "f"), "--on-bad-file", "error",
               "--val-fraction", "0", "--test-fraction", "0", "--split", "train", "--strict-modes"])
    assert rc != 0
    line = _error_line(capsys)
    assert needle in line and names[1] in line


def test_check_folder_converts_other_modes_by_default(tmp_path, capsys):
    names = make_generic_folder(tmp_path / "f", n=3)
    for name, mode in zip(names, ("L", "RGBA", "I;16")):
        write_mode(tmp_path / "f" / "images" / f"{name}.png", mode)
    rc = main(["data", "check", "folder", "--root", str(tmp_path / "f"), "--val-fraction", "0",
               "--test-fraction", "0", "--split", "train"])
    assert rc == 0 and "train: 3 good samples" in capsys.readouterr().out


def test_check_wrong_schema_and_empty_folder(tmp_path, capsys):
    make_generic_folder(tmp_path / "f", n=3)
    (tmp_path / "f" / "schema.json").write_text("[1, 2]")
    assert main(["data", "check", "folder", "--root", str(tmp_path / "f")]) != 0
    line = _error_line(capsys)
    assert "schema.json" in line and "must be a mapping with a 'classes' list" in line
    (tmp_path / "empty" / "images").mkdir(parents=True)
    assert main(["data", "check", "helen", "--root", str(tmp_path / "empty")]) != 0
    line = _error_line(capsys)
    assert "empty" in line and "not a Helen parsing folder" in line


def test_check_skip_lists_every_bad_file(tmp_path, capsys):
    names = make_helen(tmp_path / "h", "split_dirs")
    write_truncated(tmp_path / "h" / "train" / "images" / f"{names['train'][1]}.jpg")
    write_labels(tmp_path / "h" / "test" / "labels" / f"{names['test'][0]}.png", np.full((32, 32), 12))
    rc = main(["data", "check", "helen", "--root", str(tmp_path / "h")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "train: 3 good samples, 1 bad" in out and "val: 2 good samples" in out
    assert f"{names['train'][1]}.jpg: cannot be decoded" in out and "label values 12" in out
    assert main(["data", "check", "helen", "--root", str(tmp_path / "h"), "--split", "val"]) == 0


def test_synth_over_a_dataset_needs_overwrite_and_then_replaces_it_whole(tmp_path, capsys):
    from genkit.data.synthetic import write_synthetic_folder

    ds = write_synthetic_folder(tmp_path / "EXISTING", n=4, size=64, seed=0, progress=False)
    before = {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    assert main(["data", "synth", "--out", str(ds), "-n", "2", "--size", "32"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before
    assert main(["data", "synth", "--out", str(ds), "-n", "2", "--size", "32", "--overwrite"]) == 0
    images = sorted((ds / "images").iterdir())
    assert [p.name for p in images] == ["synth_00000.png", "synth_00001.png"]  # faces 2-3 of the old one are gone
    assert {Image.open(p).size for p in [*images, *(ds / "masks").iterdir()]} == {(32, 32)}
    assert json.loads((ds / "SYNTHETIC.json").read_text())["n"] == 2


def _photo_folder(out):
    """A user's own photos (and a note) in ``out/images/``: nothing genkit wrote."""
    (out / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30), "red").save(out / "images" / "IMG_0001.jpg")
    Image.new("RGB", (40, 30), "blue").save(out / "images" / "IMG_0002.png")
    (out / "images" / "note.txt").write_text("holiday 2025")
    return snapshot(out)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_synth_never_replaces_a_folder_of_the_users_own_photos(tmp_path, capsys, overwrite):
    out = tmp_path / "DIR"
    before = _photo_folder(out)
    assert main(["data", "synth", "--out", str(out), "-n", "2", "--size", "32", *overwrite]) == 2
    line = _error_line(capsys)
    assert "images/IMG_0001.jpg" in line and "images/note.txt" in line and "choose another --out" in line
    assert "a dataset" not in line and "add --overwrite" not in line  # a photo folder is not called a dataset
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["images"]


def test_overwrite_refuses_a_genkit_dataset_the_user_added_files_to_or_a_hand_made_one(tmp_path, capsys):
    from genkit.data.synthetic import write_synthetic_folder

    ds = write_synthetic_folder(tmp_path / "DS", n=2, size=32, seed=0, progress=False)
    (ds / "images" / "my_face.jpg").write_bytes(b"my own photo")
    before = snapshot(ds)
    assert main(["data", "synth", "--out", str(ds), "-n", "2", "--size", "32", "--overwrite"]) == 2
    line = _error_line(capsys)
    assert "images/my_face.jpg" in line and "synth_00000" not in line and snapshot(ds) == before
    names = make_generic_folder(tmp_path / "mine", n=2)  # a dataset made by hand: schema.json, images, masks
    before = snapshot(tmp_path / "mine")
    assert main(["data", "synth", "--out", str(tmp_path / "mine"), "-n", "2", "--size", "32", "--overwrite"]) == 2
    line = _error_line(capsys)
    assert f"images/{names[0]}.png" in line and "(5 in all)" in line and snapshot(tmp_path / "mine") == before


def test_check_reports_a_split_whose_every_sample_is_bad_and_exits_1(tmp_path, capsys):
    from genkit.data.datamodules import split_indices

    names = make_generic_folder(tmp_path / "f", n=5)
    (test_index,) = split_indices(5, 0.0, 0.2, 0)["test"]
    write_truncated(tmp_path / "f" / "images" / f"{names[test_index]}.png")
    rc = main(["data", "check", "folder", "--root", str(tmp_path / "f"), "--val-fraction", "0",
               "--test-fraction", "0.2"])
    out, err = capsys.readouterr()
    assert rc == 1, err
    assert "train: 4 good samples" in out and "val: 0 good samples" in out
    assert "test: 0 good samples, 1 bad" in out and f"{names[test_index]}.png: cannot be decoded" in out
    assert "all 1 samples are bad" not in err


def test_training_still_refuses_a_split_whose_every_sample_is_bad(tmp_path):
    from types import SimpleNamespace

    from genkit.data.schemas import HELEN11
    from genkit.data.sources import build_face_dataset
    from genkit.data.transforms import PairedTransform

    names = make_generic_folder(tmp_path / "f", n=2)
    for name in names:
        write_truncated(tmp_path / "f" / "images" / f"{name}.png")
    hp = SimpleNamespace(source="folder", root=str(tmp_path / "f"), on_bad_file="skip", val_fraction=0.0,
                         test_fraction=0.0, seed=0)
    with pytest.raises(DataError, match="all 2 samples are bad; first: .*cannot be decoded"):
        build_face_dataset(hp, "train", PairedTransform(32, HELEN11), HELEN11)


def test_overwrite_recognises_what_prepare_and_synth_really_write(tmp_path, capsys):
    raw = make_celebamask_raw(tmp_path)
    out = tmp_path / "out"
    prepare = ["data", "prepare", "celebamask-hq", "--src", str(raw.src), "--out", str(out), "--no-progress"]
    assert main(prepare) == 0 and main([*prepare, "--overwrite"]) == 0
    assert main(["data", "synth", "--out", str(out), "-n", "2", "--size", "32", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["SYNTHETIC.json", "images", "masks", "schema.json"]
    assert main([*prepare, "--overwrite"]) == 0 and (out / "prepare.json").is_file()
    assert not (out / "SYNTHETIC.json").exists()

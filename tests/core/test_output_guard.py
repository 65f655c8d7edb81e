"""The shared output checks (genkit.core.outputs) and whole-dataset replacement (genkit.core.files)."""

import os

import pytest

from genkit.core.errors import ConfigError
from genkit.core.files import replaced_entries
from genkit.core.outputs import check_dataset_output, check_not_inputs


def test_an_output_file_that_is_an_input_is_refused_even_through_a_link(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"x")
    os.link(src, tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(src)
    for out in ("a.png", "hard.png", "soft.png", "./sub/../a.png"):
        with pytest.raises(ConfigError, match=r"--out would overwrite the input .*a\.png \(content\)"):
            check_not_inputs({"content": src}, files={"--out": tmp_path / out})
    check_not_inputs({"content": src}, files={"--out": tmp_path / "b.png"})  # another file is fine


def test_outputs_in_an_input_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match="is the input folder"):
        check_not_inputs({"content": tmp_path / "photos"}, folders={"--out": tmp_path / "photos/."})
    with pytest.raises(ConfigError, match="would be written into the input folder"):
        check_not_inputs({"content": tmp_path / "photos"}, files={"--out": tmp_path / "photos" / "x.png"})
    # not an image: a later run over the folder does not read it; a sub-folder is not listed either
    check_not_inputs({"content": tmp_path / "photos"}, files={"--json": tmp_path / "photos" / "fid.json"})
    check_not_inputs({"content": tmp_path / "photos"}, folders={"--out": tmp_path / "photos" / "styled"})


def test_a_dataset_folder_is_refused_unless_overwrite_and_never_when_it_holds_an_input(tmp_path):
    (tmp_path / "DS" / "images").mkdir(parents=True)
    (tmp_path / "DS" / "schema.json").write_text("{}")
    (tmp_path / "DS" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"already holds a dataset \(images/, schema.json\); add --overwrite"):
        check_dataset_output(tmp_path / "DS", overwrite=False)
    assert check_dataset_output(tmp_path / "DS", overwrite=True) == ["images", "schema.json"]
    assert check_dataset_output(tmp_path / "new", overwrite=False) == []
    with pytest.raises(ConfigError, match="holds the input"):
        check_dataset_output(tmp_path / "DS", True, {"input": tmp_path / "DS" / "images" / "a.png"})


def test_replaced_entries_swaps_the_dataset_as_a_whole(tmp_path):
    ds = tmp_path / "DS"
    for name in ("images/old_0.png", "images/old_1.png", "masks/old_0.png"):
        (ds / name).parent.mkdir(parents=True, exist_ok=True)
        (ds / name).write_text("old")
    (ds / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError):  # a failed run: the old dataset stays, nothing new appears
        with replaced_entries(ds, ["images", "masks"]) as staging:
            (staging / "images").mkdir()
            (staging / "images" / "new_0.png").write_text("new")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in (ds / "images").iterdir()) == ["old_0.png", "old_1.png"]
    with replaced_entries(ds, ["images", "masks"]) as staging:
        (staging / "images").mkdir()
        (staging / "images" / "new_0.png").write_text("new")
    assert sorted(p.name for p in (ds / "images").iterdir()) == ["new_0.png"]
    assert not (ds / "masks").exists() and (ds / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in ds.iterdir()) == ["images", "notes.txt"]  # no staging folder left
    with pytest.raises(RuntimeError):  # a folder the failed run created is removed again
        with replaced_entries(tmp_path / "a" / "b", []):
            raise RuntimeError
    assert not (tmp_path / "a").exists()

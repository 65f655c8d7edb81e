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
    _genkit_dataset(tmp_path / "DS", "synth")
    (tmp_path / "DS" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"already holds a dataset genkit wrote \(images/, masks/, schema.json, "
                                          r"SYNTHETIC.json\); add --overwrite"):
        check_dataset_output(tmp_path / "DS", overwrite=False)
    assert check_dataset_output(tmp_path / "DS", overwrite=True) == ["images", "masks", "schema.json",
                                                                      "SYNTHETIC.json"]
    assert check_dataset_output(tmp_path / "new", overwrite=False) == []
    with pytest.raises(ConfigError, match="holds the input"):
        check_dataset_output(tmp_path / "DS", True, {"input": tmp_path / "DS" / "images" / "synth_00000.png"})


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


def _genkit_dataset(root, kind):
    """A dataset as ``data synth``, ``data prepare`` or ``parse`` write it (their files, their markers)."""
    import json

    import numpy as np
    from PIL import Image

    from genkit.core.files import atomic_write_json
    from genkit.core.saving import save_image, save_label_map

    photo, labels = Image.new("RGB", (8, 8)), np.zeros((8, 8), np.uint8)
    stems = {"synth": ["synth_00000", "synth_00001"], "prepare": ["0", "1"], "parse": ["me", "you"]}[kind]
    for stem in stems:
        meta = {"parser": "p.ckpt", "source": f"{stem}.jpg"} if kind == "parse" else None
        save_image(photo, root / "images" / f"{stem}.{'jpg' if kind == 'prepare' else 'png'}", metadata=meta)
        save_label_map(labels, root / "masks" / f"{stem}.png")
        if kind == "parse":
            save_image(photo, root / "previews" / f"{stem}.png")
    (root / "schema.json").write_text(json.dumps({"name": "helen11", "classes": ["bg"]}))
    if kind == "synth":
        atomic_write_json(root / "SYNTHETIC.json", {"synthetic": True, "n": 2, "size": 8, "seed": 0})
    if kind == "prepare":
        for split, stem in (("train", "0"), ("val", "1"), ("test", None)):
            (root / "splits").mkdir(exist_ok=True)
            (root / "splits" / f"{split}.txt").write_text(f"{stem}\n" if stem else "")
        atomic_write_json(root / "prepare.json", {"dataset": "CelebAMask-HQ", "counts": {"train": 1}})
    return root


@pytest.mark.parametrize("kind", ["synth", "prepare", "parse"])
def test_overwrite_replaces_a_dataset_genkit_wrote_and_nothing_else(tmp_path, kind):
    ds = _genkit_dataset(tmp_path / "DS", kind)
    (ds / "notes.txt").write_text("mine, beside the dataset: never replaced")
    with pytest.raises(ConfigError, match=r"already holds a dataset genkit wrote \(images/, masks/.*add --overwrite"):
        check_dataset_output(ds, overwrite=False)
    assert "notes.txt" not in check_dataset_output(ds, overwrite=True)
    for extra in ("images/holiday.jpg", "masks/holiday.png", "splits/mine.txt", "images/sub/x.png"):
        (ds / extra).parent.mkdir(parents=True, exist_ok=True)
        (ds / extra).write_bytes(b"the user's")
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match=rf"holds files genkit did not write \({extra}\).*choose another"):
                check_dataset_output(ds, overwrite=overwrite)
        (ds / extra).unlink()


def test_a_parse_dataset_is_recognised_by_each_images_metadata(tmp_path):
    from PIL import Image

    from genkit.core.saving import save_image

    ds = _genkit_dataset(tmp_path / "DS", "parse")
    save_image(Image.new("RGB", (8, 8)), ds / "images" / "you.png")  # no genkit metadata
    with pytest.raises(ConfigError, match=r"did not write \(images/you\.png, masks/you\.png, previews/you\.png\)"):
        check_dataset_output(ds, overwrite=True)

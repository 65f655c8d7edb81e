"""`genkit edit`'s options: outputs that would land on each other, combinations the editor cannot honour, flags
that contradict each other (all refused before any work, one line naming both), and --save-mask written at the
output's size so it can be fed back as --mask."""

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.cli import main as cli_main
from genkit.core.metadata import read_metadata
from genkit.core.reading import read_label_map
from genkit.data.synthetic import write_synthetic_folder
from genkit.models.portrait.checkpoint import export_generator
from genkit.models.portrait.editor import face_box
from fixtures.tiny_portrait import tiny_generator
from fixtures.user_mistakes import label_map, photo, snapshot, stand_in

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32


def _files(d):
    """A target, its mask, a donor and a stand-in checkpoint (the refusals come before any model is loaded)."""
    photo(d / "t.png"), label_map(d / "t_mask.png"), photo(d / "d.png", seed=1), label_map(d / "d_mask.png")
    stand_in(d / "p.ckpt")
    return ["edit", "--checkpoint", str(d / "p.ckpt"), "--target", str(d / "t.png"), "--mask", str(d / "t_mask.png")]


def _refused(argv, tmp_path, capsys) -> str:
    before = snapshot(tmp_path)
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced
    return err


CLASHES = {  # extra arguments -> the two options the message names, and the file both would write
    "codes onto -o": (["-o", "{d}/o.png", "--save-codes", "{d}/o.png"], ("--save-codes", "--out"), "o.png"),
    "codes onto a sample": (["--sample", "mouth", "-n", "3", "-o", "{d}/s.png", "--save-codes", "{d}/s_2.png"],
                            ("--save-codes", "--out"), "s_2.png"),
    "codes onto the saved mask": (["-o", "{d}/o.png", "--save-mask", "--save-codes", "{d}/o_mask.png"],
                                  ("--save-codes", "--save-mask"), "o_mask.png"),
    "codes onto -o's metadata sidecar": (["-o", "{d}/o.jpg", "--save-codes", "{d}/o.jpg.json"],
                                         ("--save-codes", "--out"), "o.jpg.json"),
}


@pytest.mark.parametrize("name", CLASHES)
def test_outputs_that_would_replace_each_other_are_refused(name, tmp_path, capsys):
    extra, flags, clash = CLASHES[name]
    argv = _files(tmp_path) + [a.format(d=tmp_path) for a in extra]
    err = _refused(argv, tmp_path, capsys)
    for flag in flags:
        assert flag in err, err
    assert str(tmp_path / clash) in err and "same file" in err, err


def test_folder_edits_that_would_write_one_file_twice_are_refused(tmp_path, capsys):
    photo(tmp_path / "faces" / "a.png"), photo(tmp_path / "faces" / "a.jpg", seed=2)
    photo(tmp_path / "donors" / "d.png", seed=1), stand_in(tmp_path / "p.ckpt")
    err = _refused(["edit", "--checkpoint", str(tmp_path / "p.ckpt"), "--target", str(tmp_path / "faces"),
                    "--donors", str(tmp_path / "donors"), "-o", str(tmp_path / "edits")], tmp_path, capsys)
    assert str(tmp_path / "edits" / "a__d.png") in err and "a.png" in err and "a.jpg" in err, err


@pytest.mark.parametrize("extra, flags", [
    (["--sample", "mouth", "--mouth", "{d}/d.png:{d}/d_mask.png"], ("--sample", "--mouth")),
    (["--sample", "skin", "--hair", "{d}/d.png"], ("--sample", "--hair")),
    (["--eyes", "{d}/d.png", "--left-eye", "{d}/t.png"], ("--eyes", "--left-eye")),
    (["--right-eye", "{d}/d.png", "--eyes", "{d}/t.png"], ("--eyes", "--right-eye")),
    (["--no-ema", "--generator", "ema"], ("--no-ema", "--generator ema")),
    (["--no-ema", "--generator", "auto"], ("--no-ema", "--generator auto")),
])
def test_options_that_contradict_each_other_are_refused(extra, flags, tmp_path, capsys):
    argv = _files(tmp_path) + [a.format(d=tmp_path) for a in extra] + ["-o", str(tmp_path / "o.png")]
    err = _refused(argv, tmp_path, capsys)
    for flag in flags:
        assert flag in err, err


def test_folder_edits_refuse_the_single_edit_outputs(tmp_path, capsys):
    photo(tmp_path / "faces" / "a.png"), photo(tmp_path / "donors" / "d.png", seed=1), stand_in(tmp_path / "p.ckpt")
    base = ["edit", "--checkpoint", str(tmp_path / "p.ckpt"), "--target", str(tmp_path / "faces"),
            "--donors", str(tmp_path / "donors"), "-o", str(tmp_path / "edits")]
    assert "--save-mask" in _refused(base + ["--save-mask"], tmp_path, capsys)
    assert "--save-codes" in _refused(base + ["--save-codes", str(tmp_path / "c.pt")], tmp_path, capsys)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A tiny untrained model, and a non-square photo (48 x 72: the face is edited in a crop) with its mask."""
    d = tmp_path_factory.mktemp("wide")
    torch.manual_seed(0)
    ae = export_generator(tiny_generator(SIZE, seed=None), d / "ae.pt", ema=False)
    vae = export_generator(tiny_generator(SIZE, seed=None, variational=True), d / "vae.pt", ema=False)
    faces = write_synthetic_folder(d / "faces", n=2, size=48, seed=3, progress=False)
    img = np.asarray(Image.open(faces / "images" / "synth_00000.png").convert("RGB"))
    labels = np.asarray(Image.open(faces / "masks" / "synth_00000.png"))
    Image.fromarray(np.pad(img, ((0, 0), (6, 18), (0, 0)), mode="edge")).save(d / "t.png")
    Image.fromarray(np.pad(labels, ((0, 0), (6, 18)))).save(d / "t_mask.png")
    donor = (faces / "images" / "synth_00001.png", faces / "masks" / "synth_00001.png")
    return {"dir": d, "ae": ae, "vae": vae, "donor": donor, "labels": labels}


@pytest.mark.parametrize("mode", ["transfer", "sample"])
def test_saved_mask_has_the_outputs_size_and_feeds_back_as_mask(mode, wide, tmp_path, capsys):
    d = wide["dir"]
    out = tmp_path / "o.png"
    argv = ["edit", "--target", str(d / "t.png"), "--mask", str(d / "t_mask.png"), "--save-mask", "-o", str(out)]
    if mode == "transfer":
        argv += ["--checkpoint", str(wide["ae"]), "--mouth", "{}:{}".format(*wide["donor"])]
        first = out
    else:
        argv += ["--checkpoint", str(wide["vae"]), "--sample", "mouth", "-n", "2"]
        first = tmp_path / "o_0.png"
    assert cli_main(argv) == 0, capsys.readouterr().err
    saved = read_label_map(tmp_path / "o_mask.png", 11)
    assert Image.open(first).size == (72, 48) and saved.shape == (48, 72)
    original = np.asarray(Image.open(d / "t_mask.png"))
    # the label map drawn, at the photo's size: for a transfer or a sample, the target's own (not a 64 px round trip)
    top, left, side = face_box(torch.from_numpy(original.astype(np.int64)))
    assert (top, side) == (0, 48) and 0 < left < 24  # the edit worked on a crop, not the whole photo
    outside = np.ones_like(original, dtype=bool)
    outside[:, left:left + side] = False
    assert np.array_equal(saved[outside], original[outside])
    assert (saved == original)[~outside].mean() > 0.9
    assert set(np.unique(saved)) <= set(np.unique(original))
    assert np.array_equal(saved, original)
    assert read_metadata(first)["operation"] == mode
    capsys.readouterr()
    again = ["edit", "--checkpoint", str(wide["ae"]), "--target", str(first), "--mask", str(tmp_path / "o_mask.png"),
             "-o", str(tmp_path / "again.png")]
    assert cli_main(again) == 0, capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--save-mask"], ["--region", "face"]])
def test_detect_refuses_what_it_would_ignore(extra, tmp_path, capsys):
    """--detect edits the aligned face with --region edit and warps it back: a whole-head redraw or a saved label map
    of the output would be claims the command does not honour."""
    photo(tmp_path / "p.png"), stand_in(tmp_path / "p.ckpt")
    err = _refused(["edit", "--checkpoint", str(tmp_path / "p.ckpt"), "--target", str(tmp_path / "p.png"),
                    "--detect", "--parser", str(tmp_path / "p.ckpt"), *extra, "-o", str(tmp_path / "o.png")],
                   tmp_path, capsys)
    assert " ".join(extra) in err and "--detect" in err, err


def test_saved_mask_follows_an_edit_beyond_the_targets_face(wide, tmp_path, capsys):
    """A small face in a larger photo, and an edited mask that adds hair far from it: the editor crops around both
    label maps, and the saved mask puts the drawn layout back where that crop came from."""
    faces = wide["dir"] / "faces"
    img = np.asarray(Image.open(faces / "images" / "synth_00000.png").convert("RGB"))
    labels = np.asarray(Image.open(faces / "masks" / "synth_00000.png"))
    Image.fromarray(np.pad(img, ((8, 64), (8, 64), (0, 0)), mode="edge")).save(tmp_path / "t.png")
    target = np.pad(labels, ((8, 64), (8, 64)))
    edited = target.copy()
    edited[96:116, 96:116] = 10  # hair
    Image.fromarray(target).save(tmp_path / "t_mask.png")
    Image.fromarray(edited).save(tmp_path / "edited.png")
    out = tmp_path / "o.png"
    assert cli_main(["edit", "--checkpoint", str(wide["ae"]), "--target", str(tmp_path / "t.png"), "--mask",
                     str(tmp_path / "t_mask.png"), "--edited-mask", str(tmp_path / "edited.png"), "--save-mask",
                     "-o", str(out)]) == 0, capsys.readouterr().err
    saved = read_label_map(tmp_path / "o_mask.png", 11)
    assert saved.shape == (120, 120)
    assert (saved[96:116, 96:116] == 10).mean() > 0.8  # the added hair, where it was painted
    face = edited > 0
    assert (saved[face] == edited[face]).mean() > 0.8 and (saved[~face] == 0).mean() > 0.95


ONE_PHOTO_MODE_ONLY = [  # extra arguments on a one-photo edit -> the option the message names, and what it needs
    (["-n", "3"], "-n", "--sample"),
    (["--num", "3"], "--num", "--sample"),
    (["--seed", "7"], "--seed", "--sample"),
    (["--temperature", "0.5"], "--temperature", "--sample"),
    (["--face-scale", "1.3"], "--face-scale", "--detect"),
    (["--transfer", "mouth"], "--transfer", "--donors"),
    (["--mouth", "{d}/d.png:{d}/d_mask.png", "--transfer", "mouth"], "--transfer", "--donors"),
]


@pytest.mark.parametrize("extra, option, needs", ONE_PHOTO_MODE_ONLY)
def test_options_of_another_mode_are_refused_not_ignored(extra, option, needs, tmp_path, capsys):
    """An option only another mode reads (the --sample count/seed/temperature, --detect's --face-scale, --donors'
    --transfer) would be silently ignored, and the user would believe it was honoured."""
    argv = _files(tmp_path) + [a.format(d=tmp_path) for a in extra] + ["-o", str(tmp_path / "o.png")]
    err = _refused(argv, tmp_path, capsys)
    assert option in err and needs in err, err


def test_region_face_is_refused_where_the_edit_cannot_honour_it(tmp_path, capsys):
    """--sample redraws one component and a folder edit the transferred ones: a whole-head --region face would be
    ignored."""
    argv = _files(tmp_path) + ["--sample", "mouth", "--region", "face", "-o", str(tmp_path / "o.png")]
    err = _refused(argv, tmp_path, capsys)
    assert "--region face" in err and "--sample" in err, err
    photo(tmp_path / "faces" / "a.png"), photo(tmp_path / "donors" / "d.png", seed=1)
    err = _refused(["edit", "--checkpoint", str(tmp_path / "p.ckpt"), "--target", str(tmp_path / "faces"),
                    "--donors", str(tmp_path / "donors"), "--region", "face", "-o", str(tmp_path / "edits")],
                   tmp_path, capsys)
    assert "--region face" in err and "--donors" in err, err


def test_mode_options_with_their_mode_are_honoured(wide, tmp_path, capsys):
    """-n/--seed/--temperature with --sample pass the check and are used: -n 3 writes three samples, and the seed and
    temperature are in the metadata."""
    d = wide["dir"]
    out = tmp_path / "s.png"
    argv = ["edit", "--checkpoint", str(wide["vae"]), "--target", str(d / "t.png"), "--mask", str(d / "t_mask.png"),
            "--sample", "mouth", "-n", "3", "--seed", "5", "--temperature", "0.5", "-o", str(out)]
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("s_*.png")) == ["s_0.png", "s_1.png", "s_2.png"]
    meta = read_metadata(tmp_path / "s_0.png")
    assert (meta["seed"], meta["temperature"]) == (5, 0.5)

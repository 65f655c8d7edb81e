"""``genkit stylize``: single pairs, folder batches, metadata, and clear errors for bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from genkit.cli import main
from genkit.core.metadata import read_metadata

LEVELS = ["relu4_1", "relu3_1", "relu2_1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from genkit.data.samples import sample_photo

    root = tmp_path_factory.mktemp("stylize")
    (root / "contents").mkdir()
    sample_photo("astronaut").resize((64, 64)).save(root / "contents" / "astro.png")
    sample_photo("coffee").resize((72, 48)).save(root / "contents" / "coffee.jpg")
    sample_photo("brick").resize((64, 64)).save(root / "brick.png")
    Image.new("RGBA", (64, 64), (10, 20, 30, 128)).save(root / "alpha.png")
    Image.new("RGB", (16, 16)).save(root / "tiny.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return root


@pytest.fixture(scope="module")
def decoder_files(tmp_path_factory):
    """Decoder checkpoints (untrained weights are fine for the plumbing) for the random VGG encoder."""
    from genkit.models.reshuffle.decoders import ReshuffleDecoders, save_decoders
    from genkit.nn.vgg import VGG19Encoder

    root = tmp_path_factory.mktemp("ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = VGG19Encoder(taps=LEVELS, weights="random")
    torch.manual_seed(0)
    full = save_decoders(root / "full.pt", ReshuffleDecoders(LEVELS, width=0.125), encoder)
    fine = save_decoders(root / "fine.pt", ReshuffleDecoders(["relu3_1", "relu2_1"], width=0.125), encoder)
    return {"full": full, "fine": fine}


def run(capsys, *argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["stylize", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_single_pair_with_optimisation_writes_image_and_metadata(files, tmp_path, capsys):
    out = tmp_path / "result.png"
    rc, stdout, _ = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", out, "--optimize",
                        "--steps", 2, "--size", 48, "--iterations", 1, "--alpha", "0.5,0.6,0.7", "--allow-random")
    assert rc == 0, stdout
    assert "RANDOM VGG weights" in stdout and "relu4_1: 36/36 style patches used" in stdout
    img = Image.open(out)
    assert img.size == (48, 48) and img.mode == "RGB"
    meta = read_metadata(out)
    assert meta["random_weights"] is True
    assert meta["weights"]["vgg19"] == {"file": None, "sha256": None, "random": True}
    assert meta["settings"]["reconstruction"] == "optimize" and meta["settings"]["optimize"]["steps"] == 2
    assert [lv["alpha"] for lv in meta["settings"]["levels"]] == [0.5, 0.6, 0.7]
    assert meta["levels"]["relu2_1"]["max_usage"] <= meta["levels"]["relu2_1"]["usage_limit"]
    assert meta["content"].endswith("astro.png") and meta["style"].endswith("brick.png")
    assert [h["stage"] for h in meta["optimization"]] == ["relu2_1"]  # one image, against every level's target
    assert meta["optimization"][0]["seconds_per_iteration"] > 0
    assert meta["optimization"][0]["iterations"] <= 2 and meta["optimization"][0]["stopped_early"] is False
    # the release's content share on the optimisation path: each level blends at the product of the alphas so far
    shares = [meta["levels"][t]["content_share"] for t in ("relu4_1", "relu3_1", "relu2_1")]
    assert shares == pytest.approx([0.5, 0.3, 0.21], abs=1e-6)
    assert [meta["levels"][t]["blend_alpha"] for t in ("relu4_1", "relu3_1", "relu2_1")] == pytest.approx(shares)
    assert [meta["levels"][t]["alpha"] for t in ("relu4_1", "relu3_1", "relu2_1")] == [0.5, 0.6, 0.7]
    lv = meta["levels"]["relu2_1"]
    assert lv["detail_restored"] is False and lv["stop_reason"] == "iterations" and 0 <= lv["fill_share"] <= 1
    assert lv["fill_share"] == pytest.approx(lv["n_filled"] / (48 // 2) ** 2)


def test_folder_batch_with_decoder(files, decoder_files, tmp_path, capsys):
    contents = tmp_path / "contents"
    contents.mkdir()
    for p in (files / "contents").iterdir():
        (contents / p.name).write_bytes(p.read_bytes())
    (contents / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, contents, files / "brick.png", "-o", out, "--decoder", decoder_files["full"],
                          "--size", 48, "--iterations", 1, "--preserve-color", "luminance", "--allow-random",
                          "--skip-errors")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["astro__brick.png", "coffee__brick.png"]
    assert "skipped 1 pair(s): broken.png x brick.png" in stdout
    assert "stylize" in err  # the tqdm progress bar
    meta = read_metadata(out / "coffee__brick.png")
    assert meta["settings"]["reconstruction"] == "decoder" and meta["settings"]["preserve_color"] == "luminance"
    assert meta["settings"]["decoder"]["levels"] == LEVELS and len(meta["settings"]["decoder"]["sha256"]) == 64
    assert meta["settings"]["decoder"]["encoder"]["random"] is True
    assert Image.open(out / "coffee__brick.png").size == (48, 32)
    # without --skip-errors the broken file stops the batch with its name
    rc, _, err = run(capsys, contents, files / "brick.png", "-o", tmp_path / "out2", "--decoder",
                     decoder_files["full"], "--size", 48, "--iterations", 1, "--allow-random")
    assert rc == 2 and "broken.png" in err and "cannot be decoded" in err


@pytest.mark.parametrize("name,message", [
    ("alpha.png", "RGBA (has an alpha channel)"),
    ("corrupt.png", "cannot be decoded as an image"),
    ("tiny.png", "16x16 px, too small"),
    ("missing.png", "does not exist"),
])
def test_bad_images_give_clear_errors(files, tmp_path, capsys, name, message):
    rc, _, err = run(capsys, files / name, files / "brick.png", "-o", tmp_path / "o.png", "--optimize",
                     "--allow-random", "--strict-modes")  # RGBA is converted by default, refused when strict
    assert rc == 2
    assert name in err and message in err
    assert "Traceback" not in err


def test_decoder_for_another_level_set_is_a_clear_error(files, decoder_files, tmp_path, capsys):
    rc, _, err = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", tmp_path / "o.png",
                     "--decoder", decoder_files["fine"], "--levels", ",".join(LEVELS), "--allow-random")
    assert rc == 2
    assert "relu3_1,relu2_1" in err and "relu4_1->relu3_1 missing" in err
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"nope")
    rc, _, err = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", tmp_path / "o.png",
                     "--decoder", junk, "--allow-random")
    assert rc == 2 and "junk.ckpt" in err and "cannot be loaded safely" in err


def test_missing_weights_without_allow_random_explains_the_fix(files, tmp_path, capsys):
    rc, _, err = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", tmp_path / "o.png",
                     "--optimize", "--size", 32)
    assert rc == 2
    assert "vgg19" in err and "--allow-random" in err
    assert not (tmp_path / "o.png").exists()


def _label_map(path, size, regions):
    """An 8-bit label PNG (mode L) of ``size`` (w, h): 0 everywhere, ``label`` in each ``(label, box)``."""
    import numpy as np

    labels = np.zeros(size[::-1], np.uint8)
    for label, (x0, y0, x1, y1) in regions:
        labels[y0:y1, x0:x1] = label
    Image.fromarray(labels, "L").save(path)
    return path


def test_mask_warnings_are_one_clean_line(files, tmp_path, capsys):
    # a 2x2 px content region has no 8x8 px cell at relu4_1: genkit warns, as one line without Python's internals
    cmask = _label_map(tmp_path / "c.png", (64, 64), [(1, (30, 30, 32, 32))])
    smask = _label_map(tmp_path / "s.png", (64, 64), [(1, (0, 0, 32, 64))])
    rc = main(["stylize", str(files / "contents" / "astro.png"), str(files / "brick.png"), "-o",
               str(tmp_path / "o.png"), "--optimize", "--steps", "1", "--size", "64", "--iterations", "1",
               "--allow-random", "--content-mask", str(cmask), "--style-mask", str(smask)])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if "semantic masks at relu4_1" in ln]
    assert lines and all(ln.startswith("genkit: warning: semantic masks at relu4_1: content label 1 (4 px)")
                         for ln in lines), err
    assert "UserWarning" not in err and ".py:" not in err and "level_labels(" not in err, err


def test_a_mask_of_another_size_is_refused_naming_the_file(files, tmp_path, capsys):
    cmask = _label_map(tmp_path / "c_small.png", (20, 20), [(1, (0, 0, 10, 20))])
    smask = _label_map(tmp_path / "s.png", (64, 64), [(1, (0, 0, 32, 64))])
    content = files / "contents" / "astro.png"
    rc, _, err = run(capsys, content, files / "brick.png", "-o", tmp_path / "o.png", "--optimize", "--steps", 1,
                     "--size", 64, "--allow-random", "--content-mask", cmask, "--style-mask", smask)
    assert rc == 2 and not (tmp_path / "o.png").exists()
    assert err.strip().splitlines()[-1] == (f"genkit: error: {cmask}: content mask is 20x20 but the content image "
                                            f"{content} is 64x64; a label map must have its image's size")


def test_an_animated_gif_is_read_as_its_first_frame_and_says_so(files, tmp_path, capsys):
    frames = [Image.open(files / "contents" / "astro.png").convert("RGB"), Image.new("RGB", (64, 64), (0, 200, 0))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    out = tmp_path / "o.png"
    rc, stdout, err = run(capsys, gif, files / "brick.png", "-o", out, "--optimize", "--steps", 1, "--size", 64,
                          "--iterations", 1, "--allow-random")
    assert rc == 0, err
    note = read_metadata(out)["input_conversions"][str(gif)]
    assert note == "P -> RGB (palette looked up); first of 2 frames"
    assert f"read {gif}: {note}" in stdout  # reported, not only in the metadata


def test_a_jpeg_label_map_is_warned_about_naming_the_file(files, tmp_path, capsys):
    # JPEG compression adds stray values along the region edges: every mask file that is a JPEG gets one warning
    cmask = _label_map(tmp_path / "c.png", (64, 64), [(100, (0, 0, 32, 64))])
    Image.open(cmask).save(tmp_path / "c.jpg", quality=75)
    smask = _label_map(tmp_path / "s.png", (64, 64), [(100, (0, 0, 20, 64))])
    rc = main(["stylize", str(files / "contents" / "astro.png"), str(files / "brick.png"), "-o",
               str(tmp_path / "o.png"), "--optimize", "--steps", "1", "--size", "64", "--iterations", "1",
               "--allow-random", "--content-mask", str(tmp_path / "c.jpg"), "--style-mask", str(smask)])
    err = capsys.readouterr().err
    assert rc == 0, err
    warned = [ln for ln in err.splitlines() if "JPEG" in ln]
    assert len(warned) == 1, err
    assert warned[0].startswith(f"genkit: warning: {tmp_path / 'c.jpg'}: content mask is a JPEG")
    assert "stray labels" in warned[0] and "PNG" in warned[0]

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
                     "--allow-random", "--strict-modes", "--size", 0)  # RGBA is converted by default, refused when
    # strict; --size 0 keeps tiny.png at 16x16 (with the default --size 512 it is enlarged and accepted)
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


# ------------------------------------------------------------------------------------------- output size
@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    """Contents whose sides are not multiples of the deepest stride (8), and images too small to process as they are."""
    from genkit.data.samples import sample_photo

    root = tmp_path_factory.mktemp("odd")
    photo = sample_photo("astronaut")
    for w, h in ((123, 97), (1000, 60), (240, 160), (61, 77)):
        photo.resize((w, h)).save(root / f"odd_{w}x{h}.png")
    photo.resize((8, 8)).save(root / "tiny8.png")
    photo.resize((20, 300)).save(root / "thin_20x300.png")
    sample_photo("brick").resize((64, 64)).save(root / "brick.png")
    return root


@pytest.mark.parametrize("size,hw,expected", [
    (0, (123, 97), (123, 97)),  # --size 0 keeps the size exactly (was 120x96)
    (0, (1000, 60), (1000, 60)),  # was 1000x64: a 7% vertical stretch
    (128, (240, 160), (128, 85)),  # the true aspect (was 128x88)
    (50, (61, 77), (40, 50)),  # portrait: 61 * 50 / 77 = 39.6 -> 40
])
def test_output_has_the_requested_size_and_aspect(odd_files, tmp_path, capsys, size, hw, expected):
    out = tmp_path / "o.png"
    rc, stdout, err = run(capsys, odd_files / f"odd_{hw[0]}x{hw[1]}.png", odd_files / "brick.png", "-o", out,
                          "--optimize", "--steps", 2, "--iterations", 1, "--size", size, "--allow-random")
    assert rc == 0, err
    assert Image.open(out).size == expected
    meta = read_metadata(out)
    assert meta["size"] == list(expected)
    processing = meta["processing_size"]  # processed at multiples of the stride, then resized to the exact size
    assert processing != list(expected) and all(s % 8 == 0 and abs(s - e) <= 4 for s, e in zip(processing, expected))


def test_batch_outputs_keep_each_content_size(odd_files, decoder_files, tmp_path, capsys):
    contents = tmp_path / "contents"
    contents.mkdir()
    for name in ("odd_123x97.png", "odd_61x77.png"):
        (contents / name).write_bytes((odd_files / name).read_bytes())
    out = tmp_path / "out"
    rc, _, err = run(capsys, contents, odd_files / "brick.png", "-o", out, "--decoder", decoder_files["full"],
                     "--size", 0, "--iterations", 1, "--allow-random")
    assert rc == 0, err
    assert Image.open(out / "odd_123x97__brick.png").size == (123, 97)
    assert Image.open(out / "odd_61x77__brick.png").size == (61, 77)
    meta = read_metadata(out / "odd_61x77__brick.png")
    assert meta["size"] == [61, 77] and meta["processing_size"] == [64, 80]


def test_small_inputs_are_checked_at_the_size_they_are_processed(odd_files, tmp_path, capsys):
    style = odd_files / "brick.png"
    # an 8x8 content with --size 48 is processed at 48x48: accepted (was refused as "8x8 px, too small")
    rc, _, err = run(capsys, odd_files / "tiny8.png", style, "-o", tmp_path / "a.png", "--optimize", "--steps", 1,
                     "--iterations", 1, "--size", 48, "--allow-random")
    assert rc == 0, err
    assert Image.open(tmp_path / "a.png").size == (48, 48)
    # 20x300 with --size 360 becomes 24x360: just large enough
    rc, _, err = run(capsys, odd_files / "thin_20x300.png", style, "-o", tmp_path / "b.png", "--optimize", "--steps",
                     1, "--iterations", 1, "--size", 360, "--allow-random")
    assert rc == 0, err
    assert Image.open(tmp_path / "b.png").size == (24, 360)


@pytest.mark.parametrize("content,style,options,option,suggested", [
    ("tiny8.png", None, ("--size", 0), "--size", ("--size 24 or more",)),  # kept at 8x8
    ("thin_20x300.png", None, ("--size", 200), "--size", ("--size 360 or more", "24x360")),  # 13x200: 16x200
    (None, "tiny8.png", ("--size", 0), "--style-size", ("--style-size 24 or more",)),  # the style follows --size
    (None, None, ("--size", 48, "--style-size", 16), "--style-size", ("--style-size 24 or more", "64x64 px")),
])
def test_too_small_after_resizing_names_the_file_and_the_option(odd_files, tmp_path, capsys, content, style, options,
                                                                option, suggested):
    content = odd_files / (content or "odd_123x97.png")
    style = odd_files / style if style else odd_files / "brick.png"
    rc, _, err = run(capsys, content, style, "-o", tmp_path / "o.png", "--optimize", "--steps", 1, *options,
                     "--allow-random")
    assert rc == 2 and "Traceback" not in err
    bad = style if option == "--style-size" else content
    assert str(bad) in err and "too small" in err
    for text in suggested:
        assert text in err
    if option == "--style-size":
        assert "--size" not in err.replace("--style-size", "")
    assert "--allow-large" not in err  # every suggestion here is within the 4096 px ceiling
    assert not (tmp_path / "o.png").exists()


def test_a_too_small_suggestion_past_the_size_ceiling_works_when_followed(odd_files, decoder_files, tmp_path,
                                                                          capsys):
    # 10x2000 px needs a 4800 px long side for its short side to reach 24 px: past the 4096 px ceiling, so the
    # suggestion must name --allow-large (it did not, and following it was refused a second time)
    import re

    from genkit.data.samples import sample_photo

    thin = tmp_path / "thin_10x2000.png"
    sample_photo("astronaut").resize((10, 2000)).save(thin)
    common = (thin, odd_files / "brick.png", "-o", tmp_path / "o.png", "--decoder", decoder_files["full"],
              "--iterations", 1, "--style-size", 64, "--allow-random")
    rc, _, err = run(capsys, *common, "--size", 200)
    assert rc == 2 and str(thin) in err and "too small" in err
    suggested = re.search(r"Use --size (\d+) or more", err)
    assert suggested and int(suggested.group(1)) == 4800, err
    assert "--allow-large" in err
    rc, _, err = run(capsys, *common, "--size", suggested.group(1), "--allow-large")  # the advice, followed
    assert rc == 0, err
    assert Image.open(tmp_path / "o.png").size == (24, 4800)


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


# ------------------------------------------------------------------------------------------- inputs checked first
@pytest.fixture
def no_encoder(monkeypatch):
    """Building the VGG encoder (2-4 s with real weights) fails the test: the inputs must be checked before."""
    from genkit.nn.vgg import VGG19Encoder

    def refuse(*args, **kwargs):
        raise AssertionError("the VGG encoder was built before the input files were checked")

    monkeypatch.setattr(VGG19Encoder, "__init__", refuse)


@pytest.mark.parametrize("bad_option", ["--content-mask", "--style-mask"])
@pytest.mark.parametrize("problem", ["does not exist", "is a directory"])
def test_a_bad_mask_path_is_refused_before_the_encoder_is_built(files, tmp_path, capsys, no_encoder, bad_option,
                                                                problem):
    good = _label_map(tmp_path / "good.png", (64, 64), [(1, (0, 0, 32, 64))])
    bad = tmp_path / "masks" / "missing.png"
    if problem == "is a directory":
        bad.mkdir(parents=True)
    masks = {"--content-mask": good, "--style-mask": good, bad_option: bad}
    rc, _, err = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", tmp_path / "o.png",
                     "--optimize", "--steps", 1, "--size", 64, "--allow-random", *(x for kv in masks.items() for x in kv))
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"genkit: error: {bad}: ") and problem in lines[0]
    assert bad_option in lines[0]  # which option named it
    assert not (tmp_path / "o.png").exists()


def test_one_mask_without_the_other_is_refused_before_the_encoder_is_built(files, tmp_path, capsys, no_encoder):
    good = _label_map(tmp_path / "good.png", (64, 64), [(1, (0, 0, 32, 64))])
    rc, _, err = run(capsys, files / "contents" / "astro.png", files / "brick.png", "-o", tmp_path / "o.png",
                     "--optimize", "--size", 64, "--allow-random", "--content-mask", good)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("genkit: error: ")
    assert "--style-mask" in err and "Traceback" not in err


def test_a_missing_content_or_style_is_refused_before_the_encoder_is_built(files, tmp_path, capsys, no_encoder):
    missing = tmp_path / "nowhere.png"
    for argv in ((missing, files / "brick.png"), (files / "brick.png", missing)):
        rc, _, err = run(capsys, *argv, "-o", tmp_path / "o.png", "--optimize", "--allow-random")
        assert rc == 2 and err.strip().splitlines() == [f"genkit: error: {missing}: "
                                                       + ("content" if argv[0] == missing else "style")
                                                       + " image does not exist"]

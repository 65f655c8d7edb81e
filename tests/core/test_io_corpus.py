"""The corpus of odd and broken files (tests/fixtures/odd_inputs.py) through the real commands and the datasets.

Every ordinary file is read (and its conversion recorded); every broken file gives exit code 2 and one line
naming it, without a traceback, in single-file and folder modes; folder modes skip and count with --skip-errors.
Kept cheap: tiny images, one VGG level and one optimisation step for stylize, random weights everywhere.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from fixtures.odd_inputs import BROKEN, VALID, W, H, base_rgb, problem_of, write_broken, write_valid
from PIL import Image

from genkit.cli import main
from genkit.core.metadata import read_metadata

pytestmark = pytest.mark.usefixtures("one_thread")

STYLIZE_FAST = ["--optimize", "--steps", "1", "--levels", "relu2_1", "--iterations", "1", "--size", "24",
                "--allow-random"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    valid = write_valid(root / "valid")
    broken = write_broken(root / "broken")
    Image.fromarray(base_rgb(24, 24, seed=5)).save(root / "style.png")
    return {"root": root, "valid": valid, "broken": broken, "style": root / "style.png"}


def cli(capsys, *argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, path, fragment):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("genkit: error:")]
    assert len(lines) == 1, err
    assert str(path) in lines[0] and fragment in lines[0], lines[0]


def _not_rgb(path) -> bool:
    with Image.open(path) as img:
        return img.mode != "RGB"


def _single_mode_fragment(kind: str) -> str:
    # a directory given where a file is expected is read as a folder of inputs: it holds no images
    return "contains no images" if kind == "directory" else problem_of(kind)


def _folder_with(root, name, good: int, broken: dict | None = None):
    """``good`` ordinary RGB images plus copies of the given broken files."""
    folder = root / name
    folder.mkdir()
    for i in range(good):
        Image.fromarray(base_rgb(seed=i)).save(folder / f"good_{i}.png")
    for kind, src in (broken or {}).items():
        dest = folder / src.name
        if kind == "directory":
            dest.mkdir()
        elif kind == "dangling_link":
            dest.symlink_to(folder / "missing-target.png")
        else:
            shutil.copyfile(src, dest)
    return folder


# ----------------------------------------------------------------------------------------------- stylize


def test_stylize_reads_every_ordinary_file_and_records_conversions(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = cli(capsys, "stylize", corpus["root"] / "valid", corpus["style"], "-o", out, *STYLIZE_FAST)
    assert rc == 0, err
    assert f"wrote {len(VALID)} image(s)" in stdout
    from genkit.cli.stylize import output_names

    names = output_names(list(corpus["valid"].values()))  # grey.png and grey.jpg: both written, not overwritten
    assert names[corpus["valid"]["grey_jpeg"]] == "grey.jpg" and names[corpus["valid"]["non_ascii_png"]] == "café_写真 ünï"
    for kind, path in corpus["valid"].items():
        result = out / f"{names[path]}__style.png"
        meta = read_metadata(result)
        conversions = meta.get("input_conversions", {})
        assert (str(path) in conversions) == (_not_rgb(path) or kind.startswith("exif")), kind
        with Image.open(result) as img:
            assert img.width > img.height, f"{kind}: not upright ({img.size})"  # EXIF applied: landscape
    assert read_metadata(out / "rgba.png__style.png")["input_conversions"][str(corpus["valid"]["rgba_png"])] == \
        "RGBA -> RGB (alpha dropped)"


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_stylize_single_broken_file_is_one_line(corpus, tmp_path, capsys, kind):
    path = corpus["broken"][kind]
    rc, _, err = cli(capsys, "stylize", path, corpus["style"], "-o", tmp_path / "o.png", *STYLIZE_FAST)
    assert_one_line_error(rc, err, path, _single_mode_fragment(kind))
    assert not (tmp_path / "o.png").exists()
    rc, _, err = cli(capsys, "stylize", corpus["style"], path, "-o", tmp_path / "o.png", *STYLIZE_FAST)  # as style
    assert_one_line_error(rc, err, path, _single_mode_fragment(kind))


def test_stylize_folder_stops_at_a_broken_file_or_skips_and_counts(corpus, tmp_path, capsys):
    folder = _folder_with(tmp_path, "contents", 2, corpus["broken"])
    rc, _, err = cli(capsys, "stylize", folder, corpus["style"], "-o", tmp_path / "out", *STYLIZE_FAST)
    first = sorted(p.name for p in folder.iterdir())[0]
    assert_one_line_error(rc, err, folder / first, "")
    rc, stdout, err = cli(capsys, "stylize", folder, corpus["style"], "-o", tmp_path / "out", *STYLIZE_FAST,
                          "--skip-errors")
    assert rc == 0, err
    assert "wrote 2 image(s)" in stdout and f"skipped {len(BROKEN)} pair(s)" in stdout


def test_stylize_image_below_the_models_minimum(corpus, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(base_rgb(16, 12)).save(small)  # readable, but too small for relu4_1 with 3x3 patches
    rc, _, err = cli(capsys, "stylize", small, corpus["style"], "-o", tmp_path / "o.png", "--optimize",
                     "--allow-random", "--size", "0")
    assert_one_line_error(rc, err, small, "too small")


@pytest.mark.parametrize("name, message", [("out.gif", "unknown extension"), ("out.xyz", "unknown extension")])
def test_stylize_refuses_an_unknown_output_extension_before_work(corpus, tmp_path, capsys, name, message):
    rc, _, err = cli(capsys, "stylize", corpus["valid"]["rgb_png"], corpus["style"], "-o", tmp_path / name,
                     "--optimize", "--allow-random")
    assert_one_line_error(rc, err, tmp_path / name, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext, fmt", [(".webp", "WEBP"), (".jpg", "JPEG"), (".bmp", "BMP"), (".tif", "TIFF")])
def test_stylize_output_format_follows_the_extension(corpus, tmp_path, capsys, ext, fmt):
    out = tmp_path / f"result{ext}"
    rc, _, err = cli(capsys, "stylize", corpus["valid"]["rgb_png"], corpus["style"], "-o", out, *STYLIZE_FAST)
    assert rc == 0, err
    with Image.open(out) as img:
        assert img.format == fmt
    assert read_metadata(out)["command"] == "genkit stylize"


# -------------------------------------------------------------------------------------------------- eval


EVAL_KINDS = ("grey_jpeg", "grey_alpha_png", "rgba_png", "palette_transparent_png", "cmyk_jpeg", "grey16_png",
              "bilevel_png", "exif6_jpeg", "non_ascii_png")  # the pixel values of every kind: test_io_reading


def test_eval_reads_every_ordinary_file_as_torch_fidelity(corpus, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for kind in EVAL_KINDS:
        shutil.copyfile(corpus["valid"][kind], folder / corpus["valid"][kind].name)
    out = tmp_path / "r.json"
    rc, _, err = cli(capsys, "eval", "stats", folder, "-o", tmp_path / "ref.npz", "--allow-random", "--no-progress",
                     "--no-cache", "--json", out)
    assert rc == 0, err
    record = json.loads(out.read_text())["protocol"]["input1"]
    assert record["num_samples"] == len(EVAL_KINDS)
    assert record["conversions"]["RGBA -> RGB (alpha dropped)"] == 1
    converted = sum(_not_rgb(corpus["valid"][k]) for k in EVAL_KINDS)  # no EXIF rotation for metrics
    assert sum(record["conversions"].values()) == converted == len(EVAL_KINDS) - 2


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_eval_folder_with_a_broken_file_is_one_line(corpus, tmp_path, capsys, kind):
    folder = _folder_with(tmp_path, "imgs", 2, {kind: corpus["broken"][kind]})
    bad = folder / corpus["broken"][kind].name
    rc, _, err = cli(capsys, "eval", "stats", folder, "-o", tmp_path / "s.npz", "--allow-random", "--no-progress",
                     "--no-cache")
    assert_one_line_error(rc, err, bad, problem_of(kind))
    assert not (tmp_path / "s.npz").exists()


def test_eval_skip_errors_skips_and_lists_broken_files(corpus, tmp_path, capsys):
    folder = _folder_with(tmp_path, "imgs", 3, corpus["broken"])
    rc, _, err = cli(capsys, "eval", "stats", folder, "-o", tmp_path / "s.npz", "--allow-random", "--no-progress",
                     "--skip-errors", "--json", tmp_path / "r.json")
    assert rc == 0, err
    assert f"skipped {len(BROKEN)} unreadable image(s)" in err
    record = json.loads((tmp_path / "r.json").read_text())["protocol"]["input1"]
    assert record["num_samples"] == 3 and len(record["skipped"]) == len(BROKEN)


def test_eval_lpips_image_below_the_networks_minimum(tmp_path, capsys):
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        Image.fromarray(base_rgb(24, 24)).save(tmp_path / side / "x.png")
    rc, _, err = cli(capsys, "eval", "lpips", tmp_path / "a", tmp_path / "b", "--allow-random", "--no-progress")
    assert_one_line_error(rc, err, tmp_path / "a" / "x.png", "at least 31 px")


# ------------------------------------------------------------------------------------------------- parse


@pytest.fixture(scope="module")
def parser_ckpt(tmp_path_factory):
    from fixtures.tiny_models import make_parser_checkpoint

    return make_parser_checkpoint(tmp_path_factory.mktemp("parser") / "p.ckpt", "helen11", size=32)


def _unique_stems(files: dict) -> dict:
    """``genkit parse`` refuses two inputs of one stem (a.jpg, a.png: both would be written as a.png)."""
    seen, out = set(), {}
    for kind, path in files.items():
        if path.stem not in seen:
            seen.add(path.stem)
            out[kind] = path
    return out


def test_parse_reads_every_ordinary_file_and_records_conversions(corpus, parser_ckpt, tmp_path, capsys):
    out = tmp_path / "parsed"
    photos = tmp_path / "photos"
    photos.mkdir()
    valid = _unique_stems(corpus["valid"])
    for path in valid.values():
        shutil.copyfile(path, photos / path.name)
    rc, stdout, err = cli(capsys, "parse", photos, "--checkpoint", parser_ckpt, "-o", out, "--device", "cpu")
    assert rc == 0, err
    assert f"parsed {len(valid)} photo(s)" in stdout
    meta = read_metadata(out / "images" / "cmyk.png")
    assert meta["conversion"] == "CMYK -> RGB" and meta["source_size"] == [W, H]
    assert read_metadata(out / "images" / "exif_rotated_6.png")["conversion"] == "EXIF orientation 6 applied"
    assert "conversion" not in read_metadata(out / "images" / "rgb.png")


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_parse_single_broken_file_is_one_line(corpus, parser_ckpt, tmp_path, capsys, kind):
    path = corpus["broken"][kind]
    rc, _, err = cli(capsys, "parse", path, "--checkpoint", parser_ckpt, "-o", tmp_path / "o", "--device", "cpu")
    fragment = "does not exist" if kind in ("dangling_link",) else _single_mode_fragment(kind)
    assert_one_line_error(rc, err, path, fragment)


def test_parse_folder_skips_and_counts_broken_files(corpus, parser_ckpt, tmp_path, capsys):
    broken = _unique_stems(corpus["broken"])
    folder = _folder_with(tmp_path, "photos", 2, broken)
    rc, _, err = cli(capsys, "parse", folder, "--checkpoint", parser_ckpt, "-o", tmp_path / "o", "--device", "cpu")
    assert rc == 2 and "Traceback" not in err
    rc, stdout, err = cli(capsys, "parse", folder, "--checkpoint", parser_ckpt, "-o", tmp_path / "o",
                          "--device", "cpu", "--skip-errors")
    assert rc == 0, err
    assert "parsed 2 photo(s)" in stdout and f"skipped {len(broken)}" in stdout


def test_parse_output_that_is_a_file_is_refused_before_work(corpus, parser_ckpt, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    rc, _, err = cli(capsys, "parse", corpus["valid"]["rgb_png"], "--checkpoint", tmp_path / "missing.ckpt",
                     "-o", tmp_path / "taken")
    assert_one_line_error(rc, err, tmp_path / "taken", "is a file, not a folder")


# -------------------------------------------------------------------------------------------------- edit


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """An untrained tiny portrait export (the reading plumbing does not need a trained one) and a square photo."""
    from genkit.data.synthetic import synthetic_face
    from genkit.models.portrait.module import PortraitGAN
    from fixtures.tiny_portrait import tiny_config

    d = tmp_path_factory.mktemp("portrait")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export = PortraitGAN(image_size=32, **tiny_config(losses={"vgg": 0.0}, validation={"lpips": False})
                             ).export(d / "p.pt")
    image, labels = synthetic_face(32, np.random.default_rng(0))
    Image.fromarray(labels.astype(np.uint8)).save(d / "mask.png")
    rgba = np.dstack([image, np.full((32, 32), 255, np.uint8)])
    Image.fromarray(rgba).save(d / "face_rgba.png")
    Image.fromarray(image).convert("CMYK").save(d / "face_cmyk.jpg", quality=95)
    return {"export": export, "mask": d / "mask.png", "rgba": d / "face_rgba.png", "cmyk": d / "face_cmyk.jpg"}


def test_edit_reads_ordinary_files_and_records_conversions(portrait, tmp_path, capsys):
    out = tmp_path / "edit.webp"
    rc, _, err = cli(capsys, "edit", "--checkpoint", portrait["export"], "--target", portrait["rgba"], "--mask",
                     portrait["mask"], "--mouth", f"{portrait['cmyk']}:{portrait['mask']}", "-o", out)
    assert rc == 0, err
    with Image.open(out) as img:
        assert img.format == "WEBP"
    meta = read_metadata(out)
    assert meta["input_conversions"] == {str(portrait["rgba"]): "RGBA -> RGB (alpha dropped)",
                                         str(portrait["cmyk"]): "CMYK -> RGB"}
    rc, _, err = cli(capsys, "edit", "--checkpoint", portrait["export"], "--target", portrait["rgba"], "--mask",
                     portrait["mask"], "-o", tmp_path / "e.png", "--strict-modes")
    assert_one_line_error(rc, err, portrait["rgba"], "strict")


@pytest.mark.parametrize("kind", ["random_bytes", "empty", "truncated_png", "bomb", "directory", "one_pixel"])
def test_edit_broken_target_or_mask_is_one_line(corpus, portrait, tmp_path, capsys, kind):
    path = corpus["broken"][kind]
    rc, _, err = cli(capsys, "edit", "--checkpoint", portrait["export"], "--target", path, "--mask",
                     portrait["mask"], "-o", tmp_path / "e.png")
    assert_one_line_error(rc, err, path, problem_of(kind))
    if kind != "one_pixel":  # label maps have no minimum side; a 1x1 mask fails its size check instead
        rc, _, err = cli(capsys, "edit", "--checkpoint", portrait["export"], "--target", portrait["rgba"],
                         "--mask", path, "-o", tmp_path / "e.png")
        assert_one_line_error(rc, err, path, problem_of(kind))


def test_edit_refuses_bad_output_paths_before_loading_anything(tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"  # never opened: the output is checked first
    rc, _, err = cli(capsys, "edit", "--checkpoint", missing, "--target", "x.png", "-o", tmp_path / "o.gif")
    assert_one_line_error(rc, err, tmp_path / "o.gif", "unknown extension")
    (tmp_path / "dir.png").mkdir()
    rc, _, err = cli(capsys, "edit", "--checkpoint", missing, "--target", "x.png", "-o", tmp_path / "dir.png")
    assert_one_line_error(rc, err, tmp_path / "dir.png", "existing folder")


# ---------------------------------------------------------------------------------------------- datasets


def _generic_folder(root, images: dict):
    """images/ (the given files) + masks/ (a label map of each image's upright size) + schema.json."""
    from genkit.data.schemas import HELEN11, save_schema

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for kind, src in images.items():
        dest = root / "images" / src.name
        if kind == "directory":
            dest.mkdir()
        elif kind == "dangling_link":
            dest.symlink_to(root / "nothing.png")
        else:
            shutil.copyfile(src, dest)
        Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "masks" / f"{src.stem}.png")
    save_schema(HELEN11, root / "schema.json")
    return root


def test_datasets_read_every_ordinary_file(corpus, tmp_path):
    from genkit.data.datasets import GenericFolderDataset, ImageFolderDataset

    ds = GenericFolderDataset(_generic_folder(tmp_path / "faces", corpus["valid"]), size=16)
    assert len(ds) == len(VALID)
    for i in range(len(ds)):
        assert ds[i]["image"].shape == (3, 16, 16)
    plain = ImageFolderDataset(corpus["root"] / "valid", size=16)
    assert [tuple(plain[i]["image"].shape) for i in range(len(plain))] == [(3, 16, 16)] * len(VALID)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_datasets_name_each_broken_file(corpus, tmp_path, kind):
    from genkit.data.datasets import GenericFolderDataset, ImageFolderDataset
    from genkit.core.errors import DataError

    images = {"rgb_png": corpus["valid"]["rgb_png"], kind: corpus["broken"][kind]}
    root = _generic_folder(tmp_path / "faces", images)
    bad = root / "images" / corpus["broken"][kind].name
    ds = GenericFolderDataset(root, size=16)
    with pytest.raises(DataError) as e:
        [ds[i] for i in range(len(ds))]
    assert str(e.value).startswith(f"{bad}:") and problem_of(kind) in str(e.value) and "\n" not in str(e.value)
    skipping = GenericFolderDataset(root, size=16, on_bad_file="skip")
    assert len(skipping) == 1 and skipping.skipped[0][0] == bad.stem
    with pytest.raises(DataError, match=problem_of(kind)):
        plain = ImageFolderDataset(root / "images", size=16)
        [plain[i] for i in range(len(plain))]


def test_data_check_reports_every_broken_file(corpus, tmp_path, capsys):
    root = _generic_folder(tmp_path / "faces", {"rgb_png": corpus["valid"]["rgb_png"], **corpus["broken"]})
    rc, stdout, err = cli(capsys, "data", "check", "folder", "--root", root, "--val-fraction", "0",
                          "--test-fraction", "0", "--split", "train")
    assert rc == 1 and "Traceback" not in err
    assert "train: 1 good samples" in stdout and f"{len(BROKEN)} bad" in stdout
    for path in corpus["broken"].values():
        assert path.name in stdout

"""``genkit parse`` end to end: output layout, valid labels, bad photos and mismatched checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.tiny_models import make_parser_checkpoint
from genkit.cli import main
from genkit.data.datasets import GenericFolderDataset
from genkit.data.schemas import HELEN11, load_schema
from genkit.core.metadata import read_metadata
from genkit.core.reading import read_label_map
from genkit.models.parsing.detect import Face, alignment_quad, crop_quad

GENKIT = str(Path(sys.executable).parent / "genkit")


def run_genkit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([GENKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return {"helen11": make_parser_checkpoint(d / "helen.ckpt", "helen11", size=32),
            "celebamask19": make_parser_checkpoint(d / "celeba.ckpt", "celebamask19", size=32)}


@pytest.fixture
def photos(tmp_path):
    import skimage.data

    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")  # 512x512 RGB
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.jpg")  # 600x400: not square
    return d


def test_parse_two_photos_writes_the_generic_layout(tmp_path, photos, checkpoints, capsys):
    out = tmp_path / "parsed"
    assert main(["parse", str(photos), "--checkpoint", str(checkpoints["helen11"]), "-o", str(out),
                 "--size", "48"]) == 0
    assert "parsed 2 photo(s)" in capsys.readouterr().out
    names = {"astronaut", "coffee"}
    for sub in ("images", "masks", "previews"):
        assert {p.stem for p in (out / sub).glob("*.png")} == names
    assert load_schema(out / "schema.json").classes == HELEN11.classes
    for name in names:
        img = Image.open(out / "images" / f"{name}.png")
        assert img.size == (48, 48) and img.mode == "RGB"
        labels = read_label_map(out / "masks" / f"{name}.png", num_classes=11)  # raises on labels outside
        assert labels.shape == (48, 48)
        preview = np.asarray(Image.open(out / "previews" / f"{name}.png"))
        assert np.array_equal(preview, HELEN11.colorize(labels))
        meta = read_metadata(out / "images" / f"{name}.png")
        assert meta["source"].endswith(name + (".png" if name == "astronaut" else ".jpg"))
        assert meta["schema"] == "helen11" and meta["aligned"] is False
    # the portrait model's data layer reads the folder as it is
    ds = GenericFolderDataset(out)
    assert len(ds) == 2 and ds[0]["mask"].max() < 11


def test_default_size_is_the_checkpoint_size_and_modes_need_conversion(tmp_path, checkpoints, capsys):
    gray = tmp_path / "gray.png"
    Image.fromarray((np.arange(40 * 30) % 256).astype(np.uint8).reshape(30, 40), mode="L").save(gray)
    out = tmp_path / "o"
    assert main(["parse", str(gray), "--checkpoint", str(checkpoints["helen11"]), "-o", str(out),
                 "--strict-modes"]) == 2
    assert "grayscale" in capsys.readouterr().err and not (out / "masks" / "gray.png").exists()
    assert main(["parse", str(gray), "--checkpoint", str(checkpoints["helen11"]), "-o", str(out)]) == 0
    assert Image.open(out / "masks" / "gray.png").size == (32, 32)
    assert read_metadata(out / "images" / "gray.png")["conversion"] == "L -> RGB (grey replicated)"


def test_checkpoint_of_another_schema_fails_clearly(tmp_path, photos, checkpoints, capsys):
    out = tmp_path / "o"
    code = main(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["helen11"]),
                 "-o", str(out), "--schema", "celebamask19"])
    err = capsys.readouterr().err
    assert code == 2 and "trained for schema 'helen11'" in err and "celebamask19" in err
    assert "Traceback" not in err and not out.exists()
    # an output folder that already holds a dataset is refused; --overwrite replaces it as a whole (schema too)
    main(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["celebamask19"]), "-o", str(out)])
    capsys.readouterr()
    code = main(["parse", str(photos / "coffee.jpg"), "--checkpoint", str(checkpoints["helen11"]), "-o", str(out)])
    assert code == 2 and "already holds a dataset" in capsys.readouterr().err
    assert load_schema(out / "schema.json").name == "celebamask19"
    assert main(["parse", str(photos / "coffee.jpg"), "--checkpoint", str(checkpoints["helen11"]), "-o", str(out),
                 "--overwrite"]) == 0
    assert load_schema(out / "schema.json").name == "helen11"
    assert [p.name for p in (out / "masks").iterdir()] == ["coffee.png"]  # astronaut went with the old dataset


def test_celebamask_parser_mapped_to_helen(tmp_path, photos, checkpoints):
    out = tmp_path / "o"
    assert main(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["celebamask19"]),
                 "-o", str(out), "--schema", "helen11"]) == 0
    assert load_schema(out / "schema.json").name == "helen11"
    read_label_map(out / "masks" / "astronaut.png", num_classes=11)


def test_bad_inputs_are_clear_errors(tmp_path, photos, checkpoints, capsys):
    ck = str(checkpoints["helen11"])
    assert main(["parse", str(tmp_path / "nope.jpg"), "--checkpoint", ck, "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["parse", str(photos), "--checkpoint", ck, "-o", str(tmp_path / "o"), "--size", "30"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    (photos / "broken.jpg").write_bytes(b"not an image")
    assert main(["parse", str(photos), "--checkpoint", ck, "-o", str(tmp_path / "o")]) == 2
    assert "broken.jpg" in capsys.readouterr().err
    assert main(["parse", str(photos), "--checkpoint", ck, "-o", str(tmp_path / "o2"), "--skip-errors"]) == 0
    assert "skipped 1" in capsys.readouterr().out
    assert len(list((tmp_path / "o2" / "masks").glob("*.png"))) == 2


def test_detect_without_facenet_says_how_to_install(tmp_path, photos, checkpoints, capsys):
    try:
        import facenet_pytorch  # noqa: F401
        pytest.skip("facenet-pytorch is installed here")
    except ImportError:
        pass
    code = main(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["helen11"]),
                 "-o", str(tmp_path / "o"), "--detect"])
    assert code == 2 and "pip install facenet-pytorch --no-deps" in capsys.readouterr().err


def test_detect_aligns_the_largest_face(tmp_path, photos, checkpoints, monkeypatch):
    """The --detect path with a stand-in detector (MTCNN is not installed here)."""
    from genkit.models.parsing import detect

    eyes_mouth = np.array([[220.0, 130.0], [280.0, 120.0], [250.0, 160.0], [228.0, 190.0], [278.0, 182.0]])

    class FakeDetector:
        def __init__(self, device="cpu"):
            pass

        def __call__(self, img):
            small = Face((0, 0, 10, 10), eyes_mouth / 10, 0.99)
            return sorted([small, Face((190, 80, 310, 230), eyes_mouth, 0.98)], key=lambda f: -f.area)

    monkeypatch.setattr(detect, "MTCNNDetector", FakeDetector)
    out = tmp_path / "o"
    assert main(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["helen11"]),
                 "-o", str(out), "--detect"]) == 0
    meta = read_metadata(out / "images" / "astronaut.png")
    assert meta["aligned"] is True and meta["detected_faces"] == 2
    assert np.allclose(meta["quad"], alignment_quad(eyes_mouth).round(2))


def test_alignment_quad_levels_the_eyes():
    level = np.array([[40.0, 50.0], [60.0, 50.0], [50.0, 60.0], [42.0, 70.0], [58.0, 70.0]])
    q = alignment_quad(level)
    assert np.allclose(q[0, 1], q[3, 1]) and np.allclose(q[0, 0], q[1, 0])  # axis-aligned square
    side = np.hypot(*(q[3] - q[0]))
    assert side == pytest.approx(2 * max(20 * 2.0, 20 * 1.8))
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q_rot = alignment_quad((level - 50) @ rot.T + 50)
    top = q_rot[3] - q_rot[0]
    assert np.degrees(np.arctan2(top[1], top[0])) == pytest.approx(30, abs=1e-6)
    # a crop that runs off the photo is mirrored, not an error
    img = Image.fromarray(np.full((100, 100, 3), 200, np.uint8))
    crop = crop_quad(img, q_rot * 1.5 - 25, 32)
    assert crop.size == (32, 32) and np.asarray(crop).min() == 200
    with pytest.raises(ValueError, match="landmarks"):
        alignment_quad(np.zeros((3, 2)))


def test_parse_command_as_installed(tmp_path, photos, checkpoints):
    out = tmp_path / "o"
    proc = run_genkit(["parse", str(photos / "astronaut.png"), str(photos / "coffee.jpg"),
                       "--checkpoint", str(checkpoints["helen11"]), "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "parsed 2 photo(s)" in proc.stdout
    assert json.loads((out / "schema.json").read_text())["name"] == "helen11"
    proc = run_genkit(["parse", str(photos / "astronaut.png"), "--checkpoint", str(checkpoints["helen11"]),
                       "-o", str(tmp_path / "x"), "--schema", "celebamask19"], tmp_path)
    assert proc.returncode == 2 and "trained for schema 'helen11'" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ --parser bisenet-celebamask
@pytest.fixture
def bisenet_installed(tmp_path, monkeypatch):
    """A random-valued file in the published 79999_iter.pth layout, imported under the registry name (the test
    file's hash stands in for the published one)."""
    import dataclasses

    from fixtures.published_weights import write_bisenet_file

    from genkit.core import weights

    f = tmp_path / "download" / "79999_iter.pth"
    write_bisenet_file(f, seed=0)
    entry = weights.get_entry("bisenet-celebamask")
    monkeypatch.setitem(weights.REGISTRY, entry.name, dataclasses.replace(entry, sha256_prefix=weights.sha256_file(f)))
    weights.import_weights(entry.name, f)
    return f


def test_parse_with_the_pretrained_bisenet(tmp_path, photos, bisenet_installed, capsys):
    from genkit.data.schemas import BISENET19

    out = tmp_path / "o"
    assert main(["parse", str(photos / "astronaut.png"), "--parser", "bisenet-celebamask", "-o", str(out),
                 "--size", "64"]) == 0
    assert "schema bisenet19" in capsys.readouterr().out
    assert load_schema(out / "schema.json").classes == BISENET19.classes
    labels = read_label_map(out / "masks" / "astronaut.png", num_classes=19)
    assert labels.shape == (64, 64)
    meta = read_metadata(out / "images" / "astronaut.png")
    assert meta["parser"] == "bisenet-celebamask" and meta["parser_schema"] == "bisenet19"
    # mapped to Helen-11 (the portrait model's schema) through the declared table
    out11 = tmp_path / "o11"
    assert main(["parse", str(photos / "astronaut.png"), "--parser", "bisenet-celebamask", "-o", str(out11),
                 "--size", "64", "--schema", "helen11"]) == 0
    assert load_schema(out11 / "schema.json").name == "helen11"
    assert read_label_map(out11 / "masks" / "astronaut.png", num_classes=11).shape == (64, 64)
    assert read_metadata(out11 / "images" / "astronaut.png")["parser_schema"] == "bisenet19"
    # a bisenet19 folder is read as Helen-11 by the data layer (the same declared mapping)
    ds = GenericFolderDataset(out)
    assert ds[0]["mask"].max() < 19
    from genkit.data.sources import FolderFaces
    from genkit.data.transforms import PairedTransform

    mapped = FolderFaces(root=str(out), val_fraction=0.0, test_fraction=0.0)("train", PairedTransform(64, HELEN11),
                                                                                HELEN11)
    assert len(mapped) == 1 and mapped[0]["mask"].max() < 11


def test_parse_default_size_is_bisenet_512_and_a_file_path_works(tmp_path, photos, bisenet_installed):
    out = tmp_path / "o"
    assert main(["parse", str(photos / "coffee.jpg"), "--parser", str(bisenet_installed), "-o", str(out)]) == 0
    assert Image.open(out / "masks" / "coffee.png").size == (512, 512)
    meta = read_metadata(out / "images" / "coffee.png")
    assert meta["parser"] == str(bisenet_installed) and meta["size"] == 512
    from genkit.core import weights

    assert meta["parser_sha256"] == weights.sha256_file(bisenet_installed)


def test_parse_with_bisenet_and_detect(tmp_path, photos, bisenet_installed, monkeypatch):
    from genkit.models.parsing import detect

    eyes_mouth = np.array([[220.0, 130.0], [280.0, 120.0], [250.0, 160.0], [228.0, 190.0], [278.0, 182.0]])

    class FakeDetector:
        def __init__(self, device="cpu"):
            pass

        def __call__(self, img):
            return [Face((190, 80, 310, 230), eyes_mouth, 0.98)]

    monkeypatch.setattr(detect, "MTCNNDetector", FakeDetector)
    out = tmp_path / "o"
    assert main(["parse", str(photos / "astronaut.png"), "--parser", "bisenet-celebamask", "-o", str(out),
                 "--detect", "--size", "64", "--schema", "helen11"]) == 0
    meta = read_metadata(out / "images" / "astronaut.png")
    assert meta["aligned"] is True and np.allclose(meta["quad"], alignment_quad(eyes_mouth).round(2))
    read_label_map(out / "masks" / "astronaut.png", num_classes=11)


def test_parse_with_bisenet_offline_names_the_file_and_how_to_import(tmp_path, photos, _isolated_weights_dir):
    proc = run_genkit(["parse", str(photos / "astronaut.png"), "--parser", "bisenet-celebamask",
                       "-o", str(tmp_path / "o")], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "79999_iter.pth" in proc.stderr and "genkit weights import bisenet-celebamask" in proc.stderr
    assert not (tmp_path / "o").exists()
    # an unknown name is neither a file nor a registered parser
    assert main(["parse", str(photos / "astronaut.png"), "--parser", "bisenet-helen", "-o", str(tmp_path / "o")]) == 2

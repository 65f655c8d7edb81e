"""From a photo as a new user has one: `genkit parse --size photo` -> paint the colour preview -> `genkit edit`, on a
non-square photo; the output has the photo's size. Help and errors name only options that exist."""

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures.portrait_photos import MOUTH, LLIP, SKIN, ULIP, astronaut
from fixtures.tiny_portrait import tiny_generator
from genkit.cli import main as cli_main
from genkit.core.reading import read_image, read_label_map
from genkit.data.masks import read_mask
from genkit.data.schemas import HELEN11
from genkit.models.parsing import ParserNet
from genkit.models.parsing.checkpoint import make_info_block
from genkit.models.portrait.checkpoint import export_generator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("flow")
    photo, labels = astronaut((0, 0, 512, 384))  # 512 wide, 384 high
    Image.fromarray(photo).save(d / "astronaut.png")
    torch.manual_seed(0)
    net = ParserNet(HELEN11.num_classes, base_channels=4, depth=2)
    torch.save({"genkit_parser": make_info_block(HELEN11, 64, net),
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, d / "parser.ckpt")
    gen = export_generator(tiny_generator(64), d / "gen.pt", ema=False)
    return {"dir": d, "photo": d / "astronaut.png", "labels": labels, "parser": d / "parser.ckpt", "gen": gen}


def test_parse_then_paint_then_edit_a_non_square_photo(files, tmp_path, capsys):
    parsed = tmp_path / "parsed"
    assert cli_main(["parse", str(files["photo"]), "--parser", str(files["parser"]), "--size", "photo",
                     "-o", str(parsed)]) == 0
    mask = read_label_map(parsed / "masks" / "astronaut.png", 11)
    assert mask.shape == (384, 512) and Image.open(parsed / "images" / "astronaut.png").size == (512, 384)
    preview = parsed / "previews" / "astronaut.png"
    assert np.array_equal(read_mask(preview, HELEN11), mask)  # the preview reads back as the same label map

    # a person paints the face over the preview (the random parser found none), then moves the mouth down
    painted, moved = tmp_path / "painted.png", tmp_path / "moved.png"
    labels = files["labels"]
    Image.fromarray(HELEN11.colorize(labels)).save(painted)
    edited = labels.copy()
    mouth = np.isin(labels, (ULIP, MOUTH, LLIP))
    edited[mouth] = SKIN
    ys, xs = np.nonzero(mouth)
    edited[ys + 10, xs] = labels[ys, xs]
    Image.fromarray(HELEN11.colorize(edited)).save(moved)
    out = tmp_path / "out.png"
    assert cli_main(["edit", "--checkpoint", str(files["gen"]), "--target", str(files["photo"]), "--mask",
                     str(painted), "--edited-mask", str(moved), "-o", str(out)]) == 0
    result = np.asarray(read_image(out)).astype(int)
    photo = np.asarray(read_image(files["photo"])).astype(int)
    assert result.shape == photo.shape == (384, 512, 3)
    changed = np.abs(result - photo).max(2) > 2
    assert changed[labels != edited].mean() > 0.5 and changed.mean() < 0.05
    assert "wrote" in capsys.readouterr().out


def test_help_has_a_description_and_examples(capsys):
    for command, example in (("edit", "genkit edit --checkpoint last.ckpt"), ("parse", "--size photo")):
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        text = capsys.readouterr().out
        assert example in text and "any size" in text


def test_errors_suggest_only_options_that_exist(files, tmp_path, capsys):
    rc = cli_main(["parse", str(files["photo"]), "--parser", "bisenet-celebamask", "-o", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and "genkit weights import bisenet-celebamask" in err and "--allow-random" not in err
    rc = cli_main(["parse", str(files["photo"]), "--parser", str(files["parser"]), "--size", "photo", "--detect",
                   "-o", str(tmp_path / "q")])
    assert rc == 2 and "--size photo keeps the photo whole" in capsys.readouterr().err
    rc = cli_main(["edit", "--checkpoint", str(files["gen"]), "--target", str(files["photo"]), "--mask",
                   str(files["photo"]), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a colour-coded mask" in err and "Traceback" not in err

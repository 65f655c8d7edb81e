"""`genkit edit` over folders (targets x donors, with a grid), `genkit eval diversity` and
`genkit eval mask-consistency`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.cli import main as cli_main
from genkit.data.schemas import HELEN11
from genkit.data.synthetic import write_synthetic_folder
from genkit.core.metadata import read_metadata
from genkit.core.reading import read_image, read_label_map
from genkit.models.parsing import ParserNet
from genkit.models.parsing.checkpoint import make_info_block
from genkit.models.portrait.checkpoint import export_generator
from genkit.models.portrait.editor import PortraitEditor
from fixtures.tiny_portrait import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    ae = export_generator(tiny_generator(SIZE, seed=None), d / "ae.pt", ema=False)
    vae = export_generator(tiny_generator(SIZE, seed=None, variational=True), d / "vae.pt",
                           ema=False)
    targets = write_synthetic_folder(d / "targets", n=2, size=48, seed=1, progress=False)
    donors = write_synthetic_folder(d / "donors", n=3, size=48, seed=2, progress=False)
    return {"dir": d, "ae": ae, "vae": vae, "targets": targets, "donors": donors}


def test_edit_a_folder_of_targets_with_a_folder_of_donors(setup, tmp_path, capsys):
    out = tmp_path / "edits"
    rc = cli_main(["edit", "--checkpoint", str(setup["ae"]), "--target", str(setup["targets"]),
                   "--donors", str(setup["donors"]), "--transfer", "mouth,hair", "-o", str(out)])
    assert rc == 0
    files = sorted(p.name for p in out.glob("*__*.png"))
    assert files == [f"synth_{t:05d}__synth_{d:05d}.png" for t in range(2) for d in range(3)]
    grid = Image.open(out / "grid.png")
    assert grid.size == (4 * SIZE + 5 * 2, 3 * SIZE + 4 * 2)  # donors across, targets down, + a header row/column
    assert "wrote 6 edits" in capsys.readouterr().out
    # each output is the single transfer of those components from that donor
    editor = PortraitEditor.from_checkpoint(setup["ae"])
    t = setup["targets"] / "images" / "synth_00001.png", setup["targets"] / "masks" / "synth_00001.png"
    d = setup["donors"] / "images" / "synth_00002.png", setup["donors"] / "masks" / "synth_00002.png"
    single = editor.transfer(*t, {"mouth": d, "hair": d})
    saved = np.asarray(read_image(out / "synth_00001__synth_00002.png"))
    np.testing.assert_array_equal(saved, np.asarray(single.to_pil()))
    meta = read_metadata(out / "synth_00001__synth_00002.png")
    assert meta["donor"] == str(d[0]) and meta["transferred"] == ["mouth", "hair"]
    assert meta["sources"]["mouth"] == str(d[0]) and meta["sources"]["skin"] == str(t[0])
    rc = cli_main(["edit", "--checkpoint", str(setup["ae"]), "--target", str(setup["targets"]),
                   "-o", str(tmp_path / "x")])
    assert rc == 2 and "--donors" in capsys.readouterr().err


def test_eval_diversity_of_prior_samples(setup, tmp_path, capsys):
    t_img = setup["targets"] / "images" / "synth_00000.png"
    t_mask = setup["targets"] / "masks" / "synth_00000.png"
    samples = tmp_path / "samples"
    assert cli_main(["edit", "--checkpoint", str(setup["vae"]), "--target", str(t_img), "--mask", str(t_mask),
                     "--sample", "skin", "-n", "3", "-o", str(samples / "skin.png")]) == 0
    same = tmp_path / "same"
    same.mkdir()
    for i in range(3):
        Image.open(samples / "skin_0.png").save(same / f"copy_{i}.png")
    capsys.readouterr()
    assert cli_main(["eval", "diversity", str(samples), "--allow-random", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lpips_diversity"] > 0 and result["protocol"]["conditions"] == 1
    assert result["random_weights"] is True and list(result["per_condition"]) == ["skin"]
    assert cli_main(["eval", "diversity", str(same), "--allow-random", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lpips_diversity"] == pytest.approx(0.0, abs=1e-6)
    single = tmp_path / "single"
    single.mkdir()
    Image.open(samples / "skin_0.png").save(single / "a.png")
    assert cli_main(["eval", "diversity", str(single), "--allow-random"]) == 2
    assert "two or more samples" in capsys.readouterr().err


def test_eval_mask_consistency_matches_the_metric(setup, tmp_path, capsys):
    from genkit.metrics.mask_consistency import MaskConsistency

    torch.manual_seed(0)
    net = ParserNet(11, base_channels=4, depth=2)
    ckpt = tmp_path / "parser.ckpt"
    torch.save({"genkit_parser": make_info_block(HELEN11, 48, net),
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    images, masks = setup["targets"] / "images", setup["targets"] / "masks"
    assert cli_main(["eval", "mask-consistency", str(images), str(masks), "--parser", str(ckpt), "--json",
                     "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    ref = MaskConsistency(net.eval(), 11, input_range="unit", parse_size=48)
    for name in ("synth_00000", "synth_00001"):
        x = torch.from_numpy(np.asarray(read_image(images / f"{name}.png"), dtype=np.float32) / 255).permute(2, 0, 1)
        ref.update(x[None], torch.from_numpy(read_label_map(masks / f"{name}.png", 11))[None])
    assert result["mask_miou"] == pytest.approx(float(ref.compute()["miou"]), abs=1e-6)
    assert result["protocol"]["num_samples"] == 2 and set(result["iou_per_class"]) == set(HELEN11.classes)
    (tmp_path / "few").mkdir()
    Image.open(images / "synth_00000.png").save(tmp_path / "few" / "other.png")
    assert cli_main(["eval", "mask-consistency", str(tmp_path / "few"), str(masks), "--parser", str(ckpt)]) == 2


def test_detect_without_the_optional_detector_says_how_to_install_it(setup, tmp_path, capsys):
    from skimage import data

    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    parser = tmp_path / "parser.ckpt"
    torch.manual_seed(0)
    net = ParserNet(11, base_channels=4, depth=2)
    torch.save({"genkit_parser": make_info_block(HELEN11, SIZE, net),
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, parser)
    try:
        import facenet_pytorch  # noqa: F401
    except ImportError:
        rc = cli_main(["edit", "--checkpoint", str(setup["ae"]), "--target", str(photo), "--detect", "--parser",
                       str(parser), "-o", str(tmp_path / "out.png")])
        err = capsys.readouterr().err
        assert rc == 2 and "pip install facenet-pytorch --no-deps" in err and "Traceback" not in err
    rc = cli_main(["edit", "--checkpoint", str(setup["ae"]), "--target", str(photo), "--detect",
                   "--mask", str(photo), "-o", str(tmp_path / "out.png")])
    assert rc == 2 and "--detect edits one photo" in capsys.readouterr().err

"""PortraitEditor API and `genkit edit`: reconstruct, transfer, regenerate, sample; bad input gives clear errors."""

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image

from genkit.cli import main as cli_main
from genkit.cli.edit import split_source
from genkit.data.datamodules import FaceDataModule
from genkit.data.schemas import CELEBAMASK19, HELEN11, LabelSchema
from genkit.data.transforms import resize_labels
from genkit.core.errors import CheckpointError, ConfigError, DataError
from genkit.core.metadata import read_metadata
from genkit.core.reading import read_label_map
from genkit.core.saving import save_label_map
from genkit.models.portrait.checkpoint import export_generator
from genkit.models.portrait.editor import PortraitEditor
from genkit.models.portrait.module import PortraitGAN
from fixtures.tiny_portrait import TINY_GENERATOR, tiny_config, tiny_generator

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny portrait model trained for 2 iterations: its Lightning checkpoint and an export."""
    d = tmp_path_factory.mktemp("portrait_run")
    L.seed_everything(0)
    model = PortraitGAN(image_size=SIZE, **tiny_config(losses={"vgg": 0.0}, ema={"decay": 0.9},
                                                       validation={"lpips": False}))
    dm = FaceDataModule(image_size=SIZE, batch_size=4, n_synthetic=8, value_range="symmetric", seed=0)
    tr = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=1, num_sanity_val_steps=0,
                   callbacks=[ModelCheckpoint(dirpath=d, save_last=True)])
    tr.fit(model, dm)
    export = model.export(d / "portrait_export.pt")
    return {"ckpt": d / "last.ckpt", "export": export, "model": model}


@pytest.fixture(scope="module")
def editor(run):
    return PortraitEditor.from_checkpoint(run["ckpt"])


def pair(folder, i):
    return folder / "images" / f"synth_{i:05d}.png", folder / "masks" / f"synth_{i:05d}.png"


def test_reconstruct_and_transfer_return_images_and_the_codes_used(run, editor, synthetic_folder, tmp_path):
    img0, m0 = pair(synthetic_folder, 0)
    img1, m1 = pair(synthetic_folder, 1)
    rec = editor.reconstruct(img0, m0)  # 64 px inputs: the model works at 32 px, the result is pasted at 64 px
    assert rec.image.shape == (3, 64, 64) and 0 <= float(rec.image.min()) and float(rec.image.max()) <= 1
    assert rec.mask.shape == (SIZE, SIZE)
    assert set(rec.codes) == {"left_eye", "right_eye", "mouth", "skin", "hair"}
    assert rec.codes["mouth"].shape == (TINY_GENERATOR["latent_dim"],)
    assert rec.operation == "reconstruct"
    # the better of raw / EMA by the run's last validation, and the result says which and why
    selection = torch.load(run["ckpt"], weights_only=True)["genkit_portrait"]["selection"]
    assert editor.weights == selection["weights"] and selection["metric"] == "val/l1"
    assert rec.notes[0].startswith(f"generator weights: {selection['weights']} (better by val/l1")

    out = editor.transfer(img0, m0, {"mouth": (img1, m1)})
    other = editor.encode(img1, m1)
    assert torch.equal(out.codes["mouth"], other["mouth"])
    for name in ("left_eye", "right_eye", "skin", "hair"):
        assert torch.equal(out.codes[name], rec.codes[name])
    assert out.sources["mouth"] == str(img1) and out.sources["skin"] == str(img0)
    assert not torch.equal(out.image, rec.image)
    # a code can be reused directly; 'eyes' sets both eyes
    again = editor.transfer(img0, m0, {"mouth": out.codes["mouth"]})
    assert torch.allclose(again.image, out.image, atol=1e-6)
    both = editor.transfer(img0, m0, {"eyes": (img1, m1)})
    assert torch.equal(both.codes["left_eye"], other["left_eye"]) and torch.equal(both.codes["right_eye"],
                                                                                  other["right_eye"])
    path = out.save(tmp_path / "out.png", metadata=editor.metadata())
    meta = read_metadata(path)
    assert meta["operation"] == "transfer" and meta["sources"]["mouth"] == str(img1)
    assert meta["training"]["synthetic_data"] is True and meta["generator_weights"] == editor.weights


def test_regenerate_from_an_edited_mask_follows_the_new_layout(editor, synthetic_folder):
    img0, m0 = pair(synthetic_folder, 0)
    labels = read_label_map(m0, 11)
    edited = labels.copy()
    mouth = np.isin(labels, [7, 8, 9])
    edited[mouth] = 1
    ys, xs = np.nonzero(mouth)
    edited[ys - 8, xs] = labels[ys, xs]  # move the mouth up by 8 px (of 64)
    out = editor.regenerate(img0, m0, edited)
    rec = editor.reconstruct(img0, m0)
    assert out.operation == "regenerate" and torch.equal(out.mask, torch.from_numpy(resize_labels(edited, SIZE)))
    assert torch.equal(out.codes["mouth"], rec.codes["mouth"])  # same appearance, new layout
    assert not torch.allclose(out.image, rec.image)


def test_missing_components_fall_back_with_a_note(editor, synthetic_folder, tmp_path):
    img0, m0 = pair(synthetic_folder, 0)
    img1, m1 = pair(synthetic_folder, 1)
    no_mouth = read_label_map(m1, 11)
    no_mouth[np.isin(no_mouth, [7, 8, 9])] = 1
    out = editor.transfer(img0, m0, {"mouth": (img1, no_mouth)})
    assert out.codes["mouth"].abs().sum() == 0
    assert any("mouth: not found" in n for n in out.notes)
    closed = read_label_map(m0, 11)
    closed[np.isin(closed, [4, 5])] = 1
    rec = editor.reconstruct(img0, closed)
    assert torch.isfinite(rec.image).all() and any("left_eye" in n for n in rec.notes)


def test_sampling_needs_a_vae_and_gives_diverse_components(editor, synthetic_folder, tmp_path):
    img0, m0 = pair(synthetic_folder, 0)
    with pytest.raises(ConfigError, match="variational"):
        editor.sample(img0, m0, "mouth", n=2)
    vae = tiny_generator(SIZE, variational=True)
    path = export_generator(vae, tmp_path / "vae.pt", ema=False)
    ed = PortraitEditor.from_checkpoint(path)
    samples = ed.sample(img0, m0, "mouth", n=3, seed=1)
    assert len(samples) == 3
    assert not torch.equal(samples[0].codes["mouth"], samples[1].codes["mouth"])
    assert torch.equal(samples[0].codes["skin"], samples[1].codes["skin"])
    assert (samples[0].image - samples[1].image).abs().max() > 0
    again = ed.sample(img0, m0, "mouth", n=3, seed=1)
    assert torch.equal(again[2].image, samples[2].image)  # seeded


def test_export_matches_the_checkpoint_ema_weights(run, editor, synthetic_folder):
    img0, m0 = pair(synthetic_folder, 2)
    from_export = PortraitEditor.from_checkpoint(run["export"])  # exported with weights="auto"
    assert from_export.weights == editor.weights
    assert torch.allclose(from_export.reconstruct(img0, m0, region="face").image,
                          editor.reconstruct(img0, m0, region="face").image, atol=1e-6)
    raw = PortraitEditor.from_checkpoint(run["ckpt"], weights="raw")
    ema = PortraitEditor.from_checkpoint(run["ckpt"], weights="ema")
    assert raw.weights == "raw" and ema.weights == "ema" and raw.weights_reason == "asked for"
    assert not torch.allclose(raw.reconstruct(img0, m0, region="face").image,
                              ema.reconstruct(img0, m0, region="face").image)
    with pytest.raises(CheckpointError, match="only the"):
        PortraitEditor.from_checkpoint(run["export"], weights="raw" if editor.weights == "ema" else "ema")


def test_bad_inputs_give_clear_errors(editor, synthetic_folder, tmp_path):
    img0, m0 = pair(synthetic_folder, 0)
    small = tmp_path / "small_mask.png"
    save_label_map(read_label_map(m0, 11)[::2, ::2], small)
    with pytest.raises(DataError, match=r"mask is 32x32 but its image .* is 64x64"):
        editor.reconstruct(img0, small)
    bad = read_label_map(m0, 11)
    bad[0, :3] = 12
    bad_path = tmp_path / "bad_mask.png"
    save_label_map(bad, bad_path)
    with pytest.raises(DataError, match="outside the schema"):
        editor.reconstruct(img0, bad_path)
    with pytest.raises(DataError, match="outside schema"):
        editor.reconstruct(img0, bad)  # arrays are checked too
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 48)).save(wide)
    with pytest.raises(DataError, match=r"mask is 48x48 but its image .* is 64x48"):
        editor.reconstruct(wide, np.zeros((48, 48), dtype=np.int64))
    with pytest.raises(DataError, match=r"edited mask is 32x32 but its image .*wide.png is 64x48"):
        editor.regenerate(wide, np.zeros((48, 64), dtype=np.int64), np.zeros((32, 32), dtype=np.int64))
    with pytest.raises(ConfigError, match="region must be 'edit' or 'face'"):
        editor.reconstruct(img0, m0, region="head")
    with pytest.raises(ConfigError, match="no face parser"):
        editor.reconstruct(img0)
    with pytest.raises(ConfigError, match="unknown component"):
        editor.transfer(img0, m0, {"nose": img0})


def test_checkpoints_of_another_schema_or_resolution_are_refused(run, tmp_path):
    with pytest.raises(CheckpointError, match="schema 'celebamask19'"):
        PortraitEditor.from_checkpoint(run["ckpt"], expected_schema=CELEBAMASK19)
    with pytest.raises(CheckpointError, match="works at 32x32 px, but 64 px"):
        PortraitEditor.from_checkpoint(run["ckpt"], expected_image_size=64)
    parser_ckpt = _parser_checkpoint(tmp_path / "parser.ckpt", HELEN11)
    with pytest.raises(CheckpointError, match="not a portrait-editing checkpoint .*face-parser"):
        PortraitEditor.from_checkpoint(parser_ckpt)
    # a parser of a schema with no declared mapping to the model's (19-class parsers are mapped: see
    # tests/test_parsing_bisenet_schema.py)
    other = _parser_checkpoint(tmp_path / "parser3.ckpt", LabelSchema("three", ("background", "face", "hair")))
    with pytest.raises(CheckpointError, match="schema 'three'.*no mapping"):
        PortraitEditor.from_checkpoint(run["ckpt"], parser=other)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a PyTorch checkpoint"):
        PortraitEditor.from_checkpoint(junk)
    # resuming/loading training weights into a model of another resolution
    with pytest.raises(CheckpointError, match="image_size 32 vs 64"):
        PortraitGAN.load_from_checkpoint(run["ckpt"], image_size=64, weights_only=True)


def _parser_checkpoint(path, schema):
    from genkit.models.parsing import ParserNet
    from genkit.models.parsing.checkpoint import make_info_block

    torch.manual_seed(0)
    net = ParserNet(schema.num_classes, base_channels=4, depth=2)
    torch.save({"genkit_parser": make_info_block(schema, SIZE, net),
                "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


def test_photos_without_masks_are_parsed(run, synthetic_folder, tmp_path):
    ed = PortraitEditor.from_checkpoint(run["ckpt"], parser=_parser_checkpoint(tmp_path / "p.ckpt", HELEN11))
    img0, _ = pair(synthetic_folder, 0)
    out = ed.reconstruct(img0)
    assert out.mask.shape == (SIZE, SIZE) and int(out.mask.max()) < 11
    assert any("parser" in n for n in out.notes)


def test_cli_edit_writes_outputs_with_metadata(run, synthetic_folder, tmp_path, capsys):
    img0, m0 = pair(synthetic_folder, 0)
    img1, m1 = pair(synthetic_folder, 1)
    out = tmp_path / "edits" / "out.png"
    rc = cli_main(["edit", "--checkpoint", str(run["ckpt"]), "--target", str(img0), "--mask", str(m0),
                   "--mouth", f"{img1}:{m1}", "--hair", f"{img1}:{m1}", "--save-codes", str(tmp_path / "codes.pt"),
                   "--save-mask", "-o", str(out)])
    assert rc == 0 and out.exists()
    meta = read_metadata(out)
    assert meta["operation"] == "transfer" and meta["sources"]["hair"] == str(img1)
    assert meta["components"]["mouth"] == f"{img1}:{m1}"
    codes = torch.load(tmp_path / "codes.pt", weights_only=True)
    assert set(codes["codes"][0]) == {"left_eye", "right_eye", "mouth", "skin", "hair"}
    assert (tmp_path / "edits" / "out_mask.png").exists()
    assert not list((tmp_path / "edits").glob("*.tmp"))  # atomic writes leave no temporaries
    assert "SYNTHETIC" in capsys.readouterr().out

    # user errors: one line, exit code 2, no traceback
    rc = cli_main(["edit", "--checkpoint", str(run["ckpt"]), "--target", str(img0), "--sample", "mouth",
                   "--mask", str(m0), "-o", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "variational" in err and "Traceback" not in err
    rc = cli_main(["edit", "--checkpoint", str(tmp_path / "missing.ckpt"), "--target", str(img0),
                   "-o", str(tmp_path / "x.png")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_split_source():
    assert split_source("b.png:b_mask.png") == ("b.png", "b_mask.png")
    assert split_source("b.png") == ("b.png", None)
    assert split_source("C:/faces/b.png") == ("C:/faces/b.png", None)
    assert split_source("dir:with/colon/b.jpg:m.png") == ("dir:with/colon/b.jpg", "m.png")
    assert split_source("C:/a.png:C:/m.png") == ("C:/a.png", "C:/m.png")

"""The portrait model's parser: class-weighted parsing loss by default, and warnings when a parser meets images it
was not trained for (synthetic-face parser on photos, another resolution)."""

import logging

import lightning as L
import pytest
import torch
from PIL import Image

from genkit.data.datamodules import FaceDataModule
from genkit.data.schemas import HELEN11
from genkit.models.parsing import ParserNet
from genkit.models.parsing.checkpoint import make_info_block
from genkit.models.portrait.checkpoint import export_generator
from genkit.models.portrait.editor import PortraitEditor
from genkit.models.portrait.module import PortraitGAN
from fixtures.tiny_portrait import tiny_config, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32


def parser_checkpoint(path, size=SIZE, class_weights=None, training=None):
    torch.manual_seed(0)
    net = ParserNet(11, base_channels=4, depth=2)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    if class_weights is not None:
        state["class_weights"] = torch.tensor(class_weights, dtype=torch.float32)
    block = make_info_block(HELEN11, size, net)
    if training is not None:
        block["training"] = training
    torch.save({"genkit_parser": block, "state_dict": state}, path)
    return path


def test_parsing_loss_uses_the_parsers_class_weights_by_default(tmp_path):
    weights = [0.2, 1, 5, 5, 5, 5, 3, 8, 8, 8, 1]
    ckpt = parser_checkpoint(tmp_path / "p.ckpt", class_weights=weights)
    m = PortraitGAN(image_size=SIZE, **tiny_config(parser={"checkpoint": str(ckpt)}, losses={"vgg": 0}))
    assert m.parsing_loss.class_weights.tolist() == pytest.approx(weights)
    plain = PortraitGAN(image_size=SIZE, **tiny_config(parser={"checkpoint": str(ckpt), "class_weights": "none"},
                                                       losses={"vgg": 0}))
    assert plain.parsing_loss.class_weights is None


def test_without_parser_weights_they_come_from_the_training_labels(tmp_path):
    """A parser checkpoint that kept no weights: median-frequency weights of the data, eyes and mouth weighted up."""
    ckpt = parser_checkpoint(tmp_path / "p.ckpt")
    L.seed_everything(0)
    m = PortraitGAN(image_size=SIZE, **tiny_config(parser={"checkpoint": str(ckpt)}, losses={"vgg": 0},
                                                   validation={"lpips": False}))
    assert m.parsing_loss.class_weights is None
    tr = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   limit_val_batches=0, enable_checkpointing=False)
    tr.fit(m, FaceDataModule(image_size=SIZE, batch_size=4, n_synthetic=8, value_range="symmetric"))
    w = dict(zip(HELEN11.classes, m.parsing_loss.class_weights.tolist()))
    for part in ("left_eye", "right_eye", "upper_lip", "inner_mouth", "lower_lip"):
        assert w[part] > 5 * w["skin"] and w[part] > 5 * w["background"] and w[part] > 5 * w["hair"]


def test_parser_checkpoints_record_what_they_were_trained_on(tmp_path):
    from genkit.models.parsing.module import ParserModule

    L.seed_everything(0)
    module = ParserModule(image_size=SIZE, base_channels=4, depth=2, class_weights="none")
    tr = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   limit_val_batches=0, default_root_dir=tmp_path)
    tr.fit(module, FaceDataModule(image_size=SIZE, batch_size=2, n_synthetic=4))
    tr.save_checkpoint(tmp_path / "parser.ckpt")
    block = torch.load(tmp_path / "parser.ckpt", weights_only=True)["genkit_parser"]
    assert block["training"] == {"data_source": "synthetic", "synthetic_data": True, "image_size": SIZE}


def test_a_synthetic_face_parser_meeting_a_photo_is_flagged(tmp_path, caplog, synthetic_folder):
    from skimage import data

    torch.manual_seed(0)
    gen = export_generator(tiny_generator(SIZE, seed=None), tmp_path / "g.pt", ema=False)
    parser = parser_checkpoint(tmp_path / "p.ckpt", size=64, training={"data_source": "synthetic",
                                                                       "synthetic_data": True})
    editor = PortraitEditor.from_checkpoint(gen, parser=parser)
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).crop((80, 0, 400, 320)).save(photo)
    with caplog.at_level(logging.WARNING):
        out = editor.reconstruct(photo)
    notes = " ".join(out.notes)
    assert "SYNTHETIC faces" in notes and "trained at 64 px but parses 32 px" in notes
    assert "SYNTHETIC faces" in caplog.text
    # a synthetic face (a folder written by `genkit data synth`) is what such a parser is for: only the size note
    synth = editor.reconstruct(synthetic_folder / "images" / "synth_00000.png")
    assert "SYNTHETIC" not in " ".join(synth.notes) and "trained at 64 px" in " ".join(synth.notes)
    # a parser trained on photos at the model's size: nothing to say
    good = parser_checkpoint(tmp_path / "good.ckpt", size=SIZE, training={"data_source": "helen",
                                                                          "synthetic_data": False})
    quiet = PortraitEditor.from_checkpoint(gen, parser=good).reconstruct(photo)
    assert "target mask predicted by the face parser" in quiet.notes
    assert not any("SYNTHETIC" in n or "trained at" in n for n in quiet.notes)


def test_training_with_a_synthetic_parser_on_photos_warns(tmp_path, caplog):
    from genkit.models.portrait.parser_checks import parser_warnings

    lines = parser_warnings({"synthetic_data": True}, 64, 256, photos=True)
    assert len(lines) == 2 and "SYNTHETIC" in lines[0] and "64 px" in lines[1]
    assert parser_warnings({"synthetic_data": True}, 64, 64, photos=False) == []
    assert parser_warnings({}, None, 64, photos=True) == []  # older checkpoints are not judged

"""ONNX exports of the three kinds, run with onnxruntime against PyTorch: parsers' labels identical on a real photo,
images within 1e-4, dynamic batch and size, eval-mode normalisation, metadata naming the version and the weights."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from fixtures.published_weights import write_bisenet_file
from fixtures.tiny_models import make_parser_checkpoint, synthetic_batch, write_decoders, write_generator

from genkit import __version__
from genkit.apps.export import export_onnx, export_pretrained
from genkit.apps.export.onnx_export import astronaut, check_eval_mode
from genkit.core.errors import CheckpointError
from genkit.core.weights import sha256_file
from genkit.models.parsing.checkpoint import load_parser

pytestmark = pytest.mark.usefixtures("one_thread")


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def parsers(tmp_path_factory):
    d = tmp_path_factory.mktemp("parsers")
    write_bisenet_file(d / "79999_iter.pth")
    return {"parser": make_parser_checkpoint(d / "parser.ckpt", "helen11", size=32), "bisenet": d / "79999_iter.pth"}


@pytest.mark.parametrize("kind", ["parser", "bisenet"])
def test_parser_onnx_labels_equal_genkit_s_on_a_real_photo(parsers, tmp_path, kind):
    reports = export_onnx(parsers[kind], tmp_path / "onnx")
    assert [r["file"] for r in reports] == [str(tmp_path / "onnx" / "parser.onnx")]
    assert reports[0]["labels_identical"] and reports[0]["max_abs_diff"] <= reports[0]["tolerance"]
    x = astronaut()  # skimage's astronaut, 512 px, RGB in [0, 1], NCHW
    (logits,) = session(tmp_path / "onnx" / "parser.onnx").run(None, {"image": x.numpy()})
    with torch.no_grad():
        own = load_parser(parsers[kind])(x)
    assert np.array_equal(logits.argmax(1), own.argmax(1).numpy())
    assert len(np.unique(logits.argmax(1))) > 1
    assert np.abs(logits - own.numpy()).max() <= 1e-4 * max(1.0, float(own.abs().max()))


def test_parser_onnx_has_dynamic_batch_and_size_and_its_metadata(parsers, tmp_path):
    folder = export_pretrained(parsers["parser"], tmp_path / "folder")
    export_onnx(folder, tmp_path / "onnx")
    model = onnx.load(str(tmp_path / "onnx" / "parser.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["genkit_version"] == __version__ and meta["genkit_model"] == "face-parser"
    assert meta["weights_sha256"] == sha256_file(folder / "model.safetensors")  # the same weights' identity
    assert json.loads(meta["schema"])["name"] == "helen11" and meta["multiple"] == "4"
    net = load_parser(folder)
    x = torch.rand(3, 3, 40, 72)  # another batch and size than the trace
    (logits,) = session(tmp_path / "onnx" / "parser.onnx").run(None, {"image": x.numpy()})
    with torch.no_grad():
        assert np.abs(logits - net(x).numpy()).max() <= 1e-4 * max(1.0, float(net(x).abs().max()))


def test_bisenet_onnx_records_genkit_s_resize(parsers, tmp_path):
    export_onnx(parsers["bisenet"], tmp_path / "onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "onnx" / "parser.onnx")).metadata_props}
    assert meta["resize_to"] == "512" and meta["weights_sha256"] != meta["source_sha256"] != ""


def test_a_parser_left_in_training_mode_exports_its_eval_mode(parsers, tmp_path, monkeypatch):
    """The pix2pix pitfall: batch norm in training mode normalises with the batch's statistics."""
    from genkit.apps.export import onnx_export

    real = onnx_export.parser_graphs

    def left_training(trained):
        graphs = real(trained)
        graphs[0].module.train()
        return graphs

    monkeypatch.setattr(onnx_export, "GRAPHS", {**onnx_export.GRAPHS, "face-parser": left_training})
    export_onnx(parsers["parser"], tmp_path / "onnx")
    x = torch.rand(2, 3, 32, 32)
    net = load_parser(parsers["parser"])
    (logits,) = session(tmp_path / "onnx" / "parser.onnx").run(None, {"image": x.numpy()})
    with torch.no_grad():
        eval_out = net(x).numpy()
        train_out = net.train()(x).numpy()
    assert np.abs(logits - eval_out).max() < 1e-4 < np.abs(logits - train_out).max()


def test_a_graph_still_training_is_refused():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Dropout", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(CheckpointError, match="m.onnx: the exported graph has a Dropout"):
        check_eval_mode(onnx.helper.make_model(graph), "m.onnx")


def test_decoder_onnx_files_reproduce_the_fast_path_networks(tmp_path):
    from fixtures.tiny_models import random_vgg

    from genkit.models.reshuffle.decoders import load_decoders

    ckpt = write_decoders(tmp_path / "decoders.pt")
    reports = export_onnx(ckpt, tmp_path / "onnx")
    names = sorted((tmp_path / "onnx").iterdir())
    assert [p.name for p in names] == ["decoder_relu2_1_to_image.onnx", "decoder_relu3_1_to_relu2_1.onnx",
                                       "decoder_relu4_1_to_relu3_1.onnx", "encoder.onnx"]
    assert all(r["max_abs_diff"] <= r["tolerance"] for r in reports)
    # the chain image -> relu4_1 -> relu3_1 -> relu2_1 -> image, all in onnxruntime, against PyTorch
    x = torch.rand(2, 3, 40, 56)
    feats = dict(zip(["relu4_1", "relu3_1", "relu2_1"], session(tmp_path / "onnx" / "encoder.onnx").run(
        None, {"image": x.numpy()})))
    h = feats["relu4_1"]
    for a, b in (("relu4_1", "relu3_1"), ("relu3_1", "relu2_1"), ("relu2_1", "image")):
        (h,) = session(tmp_path / "onnx" / f"decoder_{a}_to_{b}.onnx").run(None, {a: h})
    decoders, _ = load_decoders(ckpt)
    with torch.no_grad():
        want = decoders(random_vgg()(x)["relu4_1"], "relu4_1")
    assert h.shape == (2, 3, 40, 56) and np.abs(h - want.numpy()).max() <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "onnx" / "encoder.onnx")).metadata_props}
    assert json.loads(meta["encoder"])["random"] is True and meta["genkit_model"] == "reshuffle-decoders"


def test_portrait_synthesis_onnx_equals_the_generator(tmp_path):
    from genkit.apps.export.synthesis import SynthesisCore, synthesis_feed
    from genkit.models.portrait.checkpoint import load_generator

    ckpt = write_generator(tmp_path / "gen.pt")
    reports = export_onnx(ckpt, tmp_path / "onnx")
    assert reports[0]["max_abs_diff"] <= 1e-4
    gen = load_generator(ckpt)[0]
    images, masks = synthetic_batch(seeds=(4, 5, 6))
    masks[1][(masks[1] >= 7) & (masks[1] <= 9)] = 1  # no mouth: an absent component (default centre, no code)
    with torch.no_grad():
        codes = gen.encode(images.roll(1, 0), masks.roll(1, 0))  # other faces' components: a transfer
        known = gen.known_background(masks)
        want = gen.synthesize(masks, codes, images, known)
        feed = synthesis_feed(gen, masks, codes, images, known)
        core = SynthesisCore(gen)(*[torch.from_numpy(feed[n]) for n in SynthesisCore(gen).input_names()])
    assert torch.equal(core, want)  # the traceable core is the generator's own synthesis, exactly
    assert feed["presence"][1].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    (image,) = session(tmp_path / "onnx" / "synthesis.onnx").run(None, feed)
    assert image.shape == (3, 3, 64, 64) and np.abs(image - want.numpy()).max() / 2 <= 1e-4  # on the [0, 1] scale
    assert float(want.std()) > 0.01  # not a flat image


def test_a_failed_check_writes_no_file(tmp_path, monkeypatch):
    from genkit.apps.export import onnx_export

    real, seen = onnx_export.compare, []

    def fail_on_the_last(graph, data):
        seen.append(graph.file)
        if graph.file == "decoder_relu2_1_to_image.onnx":
            raise CheckpointError(f"{graph.file}: onnxruntime differs from PyTorch")
        return real(graph, data)

    monkeypatch.setattr(onnx_export, "compare", fail_on_the_last)
    with pytest.raises(CheckpointError, match="decoder_relu2_1_to_image.onnx"):
        export_onnx(write_decoders(tmp_path / "decoders.pt"), tmp_path / "onnx")
    assert len(seen) == 4 and not list((tmp_path / "onnx").glob("*.onnx"))


def test_onnx_overwrite_replaces_only_the_onnx_files_genkit_wrote(parsers, tmp_path, capsys):
    from genkit.cli import main

    out = tmp_path / "onnx"
    export_onnx(parsers["parser"], out)
    (out / "notes.txt").write_text("mine")
    argv = ["export", "onnx", str(parsers["bisenet"]), "-o", str(out)]
    assert main(argv) == 2
    assert "already holds parser.onnx; add --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    assert onnx.load(out / "parser.onnx").metadata_props and (out / "notes.txt").read_text() == "mine"
    meta = {p.key: p.value for p in onnx.load(out / "parser.onnx").metadata_props}
    assert meta["source_sha256"] == sha256_file(parsers["bisenet"])  # the new export replaced the old one
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "parser.onnx"]  # no temporary file left
    (out / "parser.onnx").write_bytes(b"my own network, not genkit's")  # a file genkit did not write is never replaced
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"genkit: error: {out}: parser.onnx was not written by genkit export; --overwrite replaces only "
                   "what genkit wrote, so choose another folder")
    assert (out / "parser.onnx").read_bytes() == b"my own network, not genkit's"

"""Model folders of the three kinds: checkpoint -> folder -> load through genkit's loaders -> identical outputs; the
card; refusals with one line naming the file, also from the commands."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from fixtures.published_weights import write_bisenet_file
from fixtures.tiny_models import make_parser_checkpoint, synthetic_batch, write_decoders, write_generator
from PIL import Image

from genkit.apps.export import export_pretrained
from genkit.cli import main
from genkit.core.errors import ConfigError, GenkitError
from genkit.models.parsing.checkpoint import load_parser

pytestmark = pytest.mark.usefixtures("one_thread")


def astronaut() -> torch.Tensor:
    from genkit.apps.export.onnx_export import astronaut

    return astronaut()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_bisenet_file(d / "79999_iter.pth")
    return {"parser": make_parser_checkpoint(d / "parser.ckpt", "helen11", size=32), "bisenet": d / "79999_iter.pth",
            "decoders": write_decoders(d / "decoders.pt"), "portrait": write_generator(d / "generator.pt")}


@pytest.fixture(scope="module")
def folders(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("folders")
    return {kind: export_pretrained(path, d / kind) for kind, path in models.items()}


@pytest.mark.parametrize("kind", ["parser", "bisenet"])
def test_parser_folders_load_back_with_identical_outputs(models, folders, kind):
    x = astronaut()  # a 512 px photo
    with torch.no_grad():
        want, got = load_parser(models[kind])(x), load_parser(folders[kind])(x)
    assert torch.equal(want, got)
    assert len(torch.unique(want.argmax(1))) > 1  # a real label map, not a constant
    assert sorted(p.name for p in folders[kind].iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_a_bisenet_folder_holds_the_published_key_layout(models, folders):
    from safetensors.torch import load_file

    published = torch.load(models["bisenet"], weights_only=True)
    stored = load_file(folders["bisenet"] / "model.safetensors")
    assert set(stored) == set(published) and all(torch.equal(stored[k], published[k]) for k in published)


def test_decoder_folders_load_back_for_the_stylizer_with_identical_results(models, folders):
    from genkit.models.reshuffle.api import Stylizer

    content, style = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    results = [Stylizer(decoder=src, vgg_weights="random", size=32, iterations=1, seed=0)(content, style)
               for src in (models["decoders"], folders["decoders"])]
    assert torch.equal(results[0].image, results[1].image)
    # the weights' identity recorded with outputs is the folder's model.safetensors
    st = Stylizer(decoder=folders["decoders"], vgg_weights="random", size=32, iterations=1)
    from genkit.core.weights import sha256_file

    assert st.settings()["decoder"]["sha256"] == sha256_file(folders["decoders"] / "model.safetensors")


def test_portrait_folders_load_back_for_the_editor_with_identical_edits(models, folders):
    from genkit.models.portrait.editor import PortraitEditor

    images, masks = synthetic_batch(seeds=(3,))
    photo = Image.fromarray(((images[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8))
    mask = masks[0].numpy().astype(np.uint8)
    edits = [PortraitEditor.from_checkpoint(src).reconstruct(photo, mask) for src in (models["portrait"],
                                                                                        folders["portrait"])]
    assert torch.equal(edits[0].image, edits[1].image)


def test_the_card_says_what_the_model_is_and_how_to_load_it(folders, models):
    card = (folders["portrait"] / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: genkit\nlicense: mit\n")
    assert "random-weights" in card and "Warning - random weights" in card and "SYNTHETIC" in card
    assert "PortraitEditor.from_checkpoint(" in card and "genkit edit --checkpoint" in card
    assert "\"ngf\"" in card  # the network's configuration
    parser_card = (folders["parser"] / "README.md").read_text()
    assert "**Training steps**: 2" in parser_card  # the checkpoint's global step
    assert "genkit parse photo.jpg --parser" in parser_card
    bisenet_card = (folders["bisenet"] / "README.md").read_text()
    assert "NOT the published 79999_iter.pth" in bisenet_card  # random values: not the real file
    decoder_card = (folders["decoders"] / "README.md").read_text()
    assert "RANDOMLY initialised VGG-19" in decoder_card and "--vgg-weights random" in decoder_card
    config = json.loads((folders["decoders"] / "config.json").read_text())
    assert config["genkit"]["encoder"]["random"] is True and config["genkit"]["levels"] == ["relu4_1", "relu3_1",
                                                                                            "relu2_1"]


def test_a_folder_reexports_and_an_existing_one_is_not_overwritten(folders, tmp_path):
    again = export_pretrained(folders["parser"], tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (folders["parser"] / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds"):
        export_pretrained(folders["parser"], again)
    (again / "notes.txt").write_text("mine")
    export_pretrained(folders["parser"], again, overwrite=True)
    assert (again / "notes.txt").read_text() == "mine"


def damage(folder, tmp_path, how: str):
    bad = tmp_path / f"{folder.name}-{how}"
    shutil.copytree(folder, bad)
    if how == "nan":
        from safetensors.torch import load_file, save_file

        state = load_file(bad / "model.safetensors")
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[key][0] = float("nan")
        save_file(state, bad / "model.safetensors")
    elif how == "missing":
        (bad / "model.safetensors").unlink()
    else:  # a config that does not match the weights
        config = json.loads((bad / "config.json").read_text())
        block = config[{"parser": "genkit_parser", "decoders": "genkit", "portrait": "genkit_portrait"}[folder.name]]
        if folder.name == "parser":
            block["network"]["base_channels"] *= 2
        elif folder.name == "decoders":
            block["width"] *= 2
        else:
            block["generator"]["ngf"] *= 2
        (bad / "config.json").write_text(json.dumps(config))
    return bad


def load(kind, source):
    if kind == "parser":
        return load_parser(source)
    if kind == "decoders":
        from genkit.models.reshuffle.decoders import load_decoders

        return load_decoders(source)
    from genkit.models.portrait.editor import PortraitEditor

    return PortraitEditor.from_checkpoint(source)


@pytest.mark.parametrize("kind", ["parser", "decoders", "portrait"])
@pytest.mark.parametrize("how, file, words", [("nan", "model.safetensors", "NaN or infinite"),
                                              ("missing", "model.safetensors", "missing"),
                                              ("mismatch", "config.json", "do not fit")])
def test_a_bad_folder_is_refused_with_one_line_naming_the_file(folders, tmp_path, kind, how, file, words):
    bad = damage(folders[kind], tmp_path, how)
    with pytest.raises(GenkitError) as exc:
        load(kind, bad)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(bad / file)) and words in message


def test_the_commands_refuse_a_bad_folder_with_one_line(folders, tmp_path, capsys):
    bad = damage(folders["parser"], tmp_path, "nan")
    Image.fromarray((astronaut()[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["parse", str(tmp_path / "a.png"), "--parser", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"genkit: error: {bad / 'model.safetensors'}: holds NaN")
    bad = damage(folders["decoders"], tmp_path, "mismatch")
    assert main(["stylize", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--decoder", str(bad),
                 "--vgg-weights", "random", "-o", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad / "config.json") in err


@pytest.mark.parametrize("kind", ["parser", "bisenet"])
def test_genkit_parse_with_a_model_folder_writes_genkit_s_own_labels(models, folders, tmp_path, kind):
    from genkit.core.reading import read_label_map

    photo = (astronaut()[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    outs = {}
    for name, src in (("ckpt", models[kind]), ("folder", folders[kind])):
        assert main(["parse", str(tmp_path / "astronaut.png"), "--parser", str(src), "--size", "512",
                     "-o", str(tmp_path / name)]) == 0
        outs[name] = read_label_map(tmp_path / name / "masks" / "astronaut.png")
    with torch.no_grad():
        own = load_parser(models[kind])(torch.from_numpy(photo / 255.0).float().permute(2, 0, 1)[None]).argmax(1)[0]
    assert np.array_equal(outs["folder"], outs["ckpt"]) and np.array_equal(outs["folder"], own.numpy())


def test_loaders_take_a_hub_id_from_the_weights_cache_offline(models, folders, monkeypatch):
    from fixtures.hub_cache import put_in_hub_cache

    from genkit.core.errors import WeightsUnavailableError
    from genkit.models.reshuffle.api import Stylizer

    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    for kind, repo in (("parser", "me/parser"), ("decoders", "me/decoders")):
        put_in_hub_cache(repo, {p.name: p.read_bytes() for p in folders[kind].iterdir()})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_parser("me/parser")(x), load_parser(models["parser"])(x))
    content, style = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    by_id = Stylizer(decoder="me/decoders", vgg_weights="random", size=32, iterations=1)(content, style)
    by_file = Stylizer(decoder=models["decoders"], vgg_weights="random", size=32, iterations=1)(content, style)
    assert torch.equal(by_id.image, by_file.image)
    with pytest.raises(WeightsUnavailableError, match="^me/portrait: hub model is not available"):
        load("portrait", "me/portrait")


def test_the_export_commands_take_a_run_folder_and_report_their_checks(models, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = torch.load(models["parser"], weights_only=True)
    ckpt["callbacks"] = {"ModelCheckpoint{'monitor': 'val/miou', 'mode': 'max'}": {
        "monitor": "val/miou", "best_model_score": torch.tensor(0.4321)}}
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    assert main(["export", "pretrained", str(run), "-o", str(tmp_path / "folder")]) == 0
    assert "loads back bit-identically" in capsys.readouterr().out
    card = (tmp_path / "folder" / "README.md").read_text()
    assert "| val/miou | 0.4321 | not recorded | best of the run (ModelCheckpoint) |" in card
    assert main(["export", "onnx", str(tmp_path / "folder"), "-o", str(tmp_path / "onnx")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'onnx' / 'parser.onnx'}: image -> logits" in out and "labels identical" in out
    (run / "checkpoints" / "last.ckpt").unlink()
    assert main(["export", "pretrained", str(run), "-o", str(tmp_path / "f2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genkit: error: {run}: not a model folder (no config.json) and a run folder with no checkpoint"
    assert not (tmp_path / "f2").exists()


def test_a_file_that_is_no_checkpoint_is_named_for_what_export_takes(tmp_path, capsys):
    Image.new("RGB", (8, 8), "white").save(tmp_path / "text.png")
    for what in ("pretrained", "onnx"):
        assert main(["export", what, str(tmp_path / "text.png"), "-o", str(tmp_path / what)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"genkit: error: {tmp_path / 'text.png'}: not a ")
        assert "face-parser" not in err  # the user never said parser
        assert "face parser, reshuffle decoders, portrait generator or BiSeNet file" in err
        assert not (tmp_path / what).exists()


def test_overwrite_never_replaces_model_files_genkit_did_not_write(folders, tmp_path, capsys):
    repo = tmp_path / "my-repo"
    repo.mkdir()
    (repo / "README.md").write_text("# my project\n")
    argv = ["export", "pretrained", str(folders["parser"]), "-o", str(repo)]
    for extra in ([], ["--overwrite"]):
        assert main([*argv, *extra]) == 2
        assert capsys.readouterr().err.strip() == (
            f"genkit: error: {repo}: README.md was not written by genkit export; --overwrite replaces only what "
            "genkit wrote, so choose another folder")
    assert sorted(p.name for p in repo.iterdir()) == ["README.md"]
    assert (repo / "README.md").read_text() == "# my project\n"
    again = export_pretrained(folders["parser"], tmp_path / "again")  # genkit's own files are replaced
    assert main(["export", "pretrained", str(folders["bisenet"]), "-o", str(again), "--overwrite"]) == 0
    assert json.loads((again / "config.json").read_text())["genkit_parser"]["architecture"] == "bisenet"

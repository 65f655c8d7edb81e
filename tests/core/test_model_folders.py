"""The model-folder reader every loader shares: refusals with one line naming the file, hub ids resolved through
the weights cache under the offline policy."""

from __future__ import annotations

import json

import pytest
import torch
from fixtures.hub_cache import put_in_hub_cache

from genkit.core import model_folders
from genkit.core.errors import GenkitError, WeightsUnavailableError

KIND = "face-parser"


def write_folder(path, state=None, **config):
    state = {"w": torch.arange(6.0).view(2, 3), "n": torch.tensor(3)} if state is None else state
    return model_folders.write(path, model_folders.new_config(KIND, "block", {"a": 1}, **config), state, "# card\n")


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_written_folder_reads_back_exactly(tmp_path):
    state = {"w": torch.randn(3, 4), "i": torch.arange(5), "h": torch.randn(2).half()}
    folder = write_folder(tmp_path / "m", state)
    got = model_folders.read(folder, KIND)
    assert got.config["block"] == {"a": 1} and got.config[model_folders.KIND_KEY] == KIND
    assert set(got.state) == set(state) and all(torch.equal(got.state[k], state[k]) for k in state)
    assert all(got.state[k].dtype == state[k].dtype for k in state)
    # the identity of the weights is the sha256 of model.safetensors, computable before writing
    assert model_folders.weights_sha256(folder) == model_folders.state_sha256(state)
    assert (folder / "README.md").read_text() == "# card\n"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_file(tmp_path, bad):
    folder = write_folder(tmp_path / "m", {"ok": torch.ones(2), "bad": torch.tensor([1.0, bad])})
    with pytest.raises(GenkitError) as exc:
        model_folders.read(folder, KIND)
    assert one_line(exc).startswith(str(folder / "model.safetensors")) and "'bad'" in str(exc.value)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_a_missing_file_is_refused_naming_it(tmp_path, missing):
    folder = write_folder(tmp_path / "m")
    (folder / missing).unlink()
    with pytest.raises(GenkitError) as exc:
        model_folders.read(folder, KIND)
    assert one_line(exc).startswith(str(folder / missing)) and "missing" in str(exc.value)


@pytest.mark.parametrize("text, expected", [
    ("{not json", "not a readable JSON config"),
    (json.dumps({"genkit_model": "portrait-generator", "format": 1}), "holds a portrait-generator model, not a "
                                                                       "face-parser"),
    (json.dumps({"format": 1}), "not a genkit model config"),
    (json.dumps({"genkit_model": KIND, "format": 99}), "format 99 is not supported"),
])
def test_a_damaged_or_foreign_config_is_refused_naming_it(tmp_path, text, expected):
    folder = write_folder(tmp_path / "m")
    (folder / "config.json").write_text(text)
    with pytest.raises(GenkitError) as exc:
        model_folders.read(folder, KIND)
    assert one_line(exc).startswith(str(folder / "config.json")) and expected in str(exc.value)


def test_damaged_weights_are_refused_naming_the_file(tmp_path):
    folder = write_folder(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(GenkitError) as exc:
        model_folders.read(folder, KIND)
    assert one_line(exc).startswith(str(folder / "model.safetensors"))


def test_hub_ids_are_told_apart_from_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "parser").mkdir(parents=True)
    assert model_folders.is_hub_id("someone/face-parser")
    assert not model_folders.is_hub_id("runs/parser")  # an existing folder
    assert not model_folders.is_hub_id("runs/last.ckpt") and not model_folders.is_hub_id("bisenet-celebamask")
    assert not model_folders.is_hub_id("a/b/c") and not model_folders.is_hub_id("../x")
    assert model_folders.is_model_source("runs/parser") and not model_folders.is_model_source("runs/last.ckpt")


def test_offline_an_uncached_hub_model_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as exc:
        model_folders.read("someone/face-parser", KIND)
    message = one_line(exc)
    assert message.startswith("someone/face-parser: hub model is not available") and "GENKIT_OFFLINE" in message
    assert str(model_folders.hub_cache()) in message


def test_offline_a_cached_hub_model_is_read_from_the_weights_cache(tmp_path, monkeypatch, _isolated_weights_dir):
    monkeypatch.setenv("GENKIT_OFFLINE", "1")
    folder = write_folder(tmp_path / "m")
    snapshot = put_in_hub_cache("someone/face-parser", {n: (folder / n).read_bytes()
                                                        for n in ("config.json", "model.safetensors")})
    assert str(snapshot).startswith(str(_isolated_weights_dir))  # GENKIT_WEIGHTS_DIR, as every weights file
    got = model_folders.read("someone/face-parser", KIND)
    assert got.path == snapshot and torch.equal(got.state["w"], torch.arange(6.0).view(2, 3))

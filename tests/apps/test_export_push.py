"""``genkit export push``: the payload checked locally (no network): the three files, the card, refusals."""

from __future__ import annotations

import pytest

from genkit.apps.export import export_pretrained, push
from genkit.cli import main
from genkit.core.errors import GenkitError
from genkit.core.weights import sha256_file


class RecordingApi:
    """Stands in for ``huggingface_hub.HfApi``: records what would be sent."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        sent = sorted(p.name for p in folder.iterdir() if any(p.match(pat) for pat in kwargs["allow_patterns"]))
        self.calls.append(("upload_folder", kwargs["repo_id"], sent, kwargs["commit_message"]))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/0"})()


@pytest.fixture
def folder(tmp_path):
    from fixtures.tiny_models import write_decoders

    out = export_pretrained(write_decoders(tmp_path / "decoders.pt"), tmp_path / "folder", ref="me/decoders")
    (out / "notes.txt").write_text("private notes")  # not part of the model: never uploaded
    return out


def test_push_uploads_the_model_files_and_its_card_only(folder):
    api = RecordingApi()
    payload = push(folder, "me/decoders", private=True, api=api)
    assert api.calls[0] == ("create_repo", "me/decoders", {"private": True, "exist_ok": True})
    assert api.calls[1][:3] == ("upload_folder", "me/decoders", ["README.md", "config.json", "model.safetensors"])
    sha = sha256_file(folder / "model.safetensors")
    assert sha[:16] in api.calls[1][3] and payload["weights_sha256"] == sha
    assert payload["kind"] == "reshuffle-decoders" and payload["url"].endswith("/commit/0")
    assert "Stylizer(decoder='me/decoders'" in payload["card"]  # the card names the hub id users load


def test_the_push_command_dry_run_lists_the_payload(folder, capsys):
    assert main(["export", "push", str(folder), "--repo", "me/decoders", "--dry-run"]) == 0
    out = capsys.readouterr().out
    size = (folder / "model.safetensors").stat().st_size
    assert f"model.safetensors\t{size} bytes" in out and "would upload a reshuffle-decoders to me/decoders" in out
    assert "notes.txt" not in out


@pytest.mark.parametrize("problem", ["repo", "card", "nan"])
def test_a_push_that_cannot_be_right_is_refused_before_any_upload(folder, problem):
    from safetensors.torch import load_file, save_file

    repo = "not a repo id" if problem == "repo" else "me/decoders"
    if problem == "card":
        (folder / "README.md").unlink()
    if problem == "nan":
        state = load_file(folder / "model.safetensors")
        state[next(iter(state))].fill_(float("inf"))
        save_file(state, folder / "model.safetensors")
    api = RecordingApi()
    with pytest.raises(GenkitError) as exc:
        push(folder, repo, api=api)
    assert api.calls == [] and "\n" not in str(exc.value)
    assert {"repo": "--repo 'not a repo id'", "card": "README.md: missing",
            "nan": "model.safetensors: holds NaN or infinite"}[problem] in str(exc.value)

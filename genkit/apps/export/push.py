"""``genkit export push DIR --repo user/name``: upload a model folder to the Hugging Face hub.

The payload is checked locally first (:func:`push_payload`): the folder must load as a genkit model folder (config,
finite weights, a card), and only its three files are uploaded (``huggingface_hub``'s ``create_repo`` and
``upload_folder``; the token comes from ``huggingface-cli login`` / ``HF_TOKEN``).
"""

from __future__ import annotations

import json
from pathlib import Path

from genkit.core import model_folders
from genkit.core.errors import CheckpointError, ConfigError

FILES = (model_folders.CONFIG_NAME, model_folders.WEIGHTS_NAME, model_folders.CARD_NAME)


def push_payload(folder: str | Path) -> dict:
    """What a push uploads: ``files`` (name -> size in bytes), the model ``kind`` and the ``card`` text; a folder
    that does not read as a genkit model folder, or has no card, is refused with one line naming the file."""
    from genkit.core.weights import sha256_file

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder (write a model folder with `genkit export pretrained`)")
    config_path = folder / model_folders.CONFIG_NAME
    try:
        kind = json.loads(config_path.read_text(encoding="utf-8")).get(model_folders.KIND_KEY)
    except (OSError, ValueError, AttributeError):
        kind = None
    model_folders.read(folder, kind if kind in model_folders.KINDS else "genkit model")
    card = folder / model_folders.CARD_NAME
    if not card.is_file():
        raise CheckpointError(f"{card}: missing; a model on the hub needs its card (genkit export pretrained "
                              "writes one)")
    return {"kind": kind, "files": {name: (folder / name).stat().st_size for name in FILES},
            "weights_sha256": sha256_file(folder / model_folders.WEIGHTS_NAME),
            "card": card.read_text(encoding="utf-8")}


def push(folder: str | Path, repo: str, private: bool = False, revision: str | None = None, api=None,
         dry_run: bool = False) -> dict:
    """Upload the model folder's files to hub repository ``repo`` (created when missing); returns the payload with
    the commit's ``url``. ``api``: an ``huggingface_hub.HfApi`` (default: a new one); ``dry_run``: check only."""
    if not model_folders.valid_repo_id(repo):
        raise ConfigError(f"--repo {repo!r}: a hub repository is named user/name")
    payload = push_payload(folder)
    if dry_run:
        return payload
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo, folder_path=str(folder), allow_patterns=list(FILES), revision=revision,
                               commit_message=f"genkit {payload['kind']} (weights sha256 "
                                              f"{payload['weights_sha256'][:16]})")
    return {**payload, "url": str(getattr(commit, "commit_url", commit))}

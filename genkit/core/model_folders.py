"""Model folders in the Hugging Face hub's convention: ``config.json`` + ``model.safetensors`` (+ ``README.md``).

Every loader of a trained genkit model (``load_parser``, the reshuffle decoders, the portrait generator) accepts such
a folder, by path or by hub id (``user/name``). This module is the one reader they share: it resolves a hub id with
``huggingface_hub`` into the weights cache (:func:`genkit.core.weights.cache_dir`, under ``hub/``) under the same
offline policy as the pretrained weights (``GENKIT_OFFLINE=1``: only what is cached; download timeouts from
``GENKIT_DOWNLOAD_TIMEOUT``), and refuses a folder with a missing file, a damaged ``config.json``, a config of
another kind of model, or weights that are not finite, with one line naming the file. Whether the weights fit the
network the config describes is each loader's check (:func:`genkit.core.weights.state_mismatch`, one line naming
``config.json``).

``config.json`` holds ``genkit_model`` (the kind: ``face-parser``, ``reshuffle-decoders``, ``portrait-generator``),
``format``, the genkit version that wrote it and the kind's own block (the same plain values its checkpoints hold).
Weights are read with safetensors (no pickle).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from genkit.core.errors import CheckpointError, WeightsFileError, WeightsUnavailableError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
KIND_KEY = "genkit_model"
KINDS = ("face-parser", "reshuffle-decoders", "portrait-generator")
HUB_SUBDIR = "hub"
# user/name (the hub's repo id rules: letters, digits, '-', '_', '.'); a checkpoint-like suffix means a file path
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".json")


@dataclass(frozen=True)
class ModelFolder:
    """A read model folder: where it is, its config and its weights (CPU tensors)."""

    path: Path
    config: dict
    state: dict

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_NAME


def is_hub_id(source) -> bool:
    """Whether ``source`` names a hub repository (``user/name``) rather than a local path."""
    if not isinstance(source, str) or Path(source).expanduser().exists():
        return False
    return valid_repo_id(source) and not source.lower().endswith(_FILE_SUFFIXES)


def valid_repo_id(repo_id: str) -> bool:
    """Whether ``repo_id`` has the hub's ``user/name`` form."""
    return bool(_HUB_ID.match(repo_id)) and ".." not in repo_id


def is_model_source(source) -> bool:
    """A local folder (loaders read every folder as a model folder) or a hub id."""
    if isinstance(source, (str, Path)) and Path(source).expanduser().is_dir():
        return True
    return is_hub_id(source)


def local_path(source: str | Path) -> Path:
    """The local folder of ``source``: the folder itself, or a hub id's snapshot in the weights cache."""
    if is_hub_id(source):
        return download(str(source))
    return Path(source).expanduser()


def hub_cache() -> Path:
    from genkit.core import weights

    return weights.cache_dir() / HUB_SUBDIR


def download(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot of hub model ``repo_id`` (config, weights, card) in the weights cache; offline, the cached one."""
    from genkit.core import weights

    offline = weights._offline()
    fix = (f"download it where the hub can be reached and pass the folder (genkit export pretrained writes one), "
           f"or put the hub's cache layout under {hub_cache()}")
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsUnavailableError(f"{repo_id}: a Hugging Face hub id, and huggingface_hub is not installed "
                                      "(pip install huggingface_hub)") from None
    timeout = weights.download_timeout()
    try:
        with weights._hf_timeouts(timeout):
            got = huggingface_hub.snapshot_download(
                repo_id, revision=revision, cache_dir=hub_cache(), local_files_only=offline, etag_timeout=timeout,
                allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME], library_name="genkit")
    except Exception as exc:  # noqa: BLE001 - offline cache misses, HTTP errors, timeouts: all "not available"
        why = ("not in the cache and downloads are off (GENKIT_OFFLINE=1)" if offline
               else f"download failed ({weights._describe(exc, timeout)})")
        raise WeightsUnavailableError(f"{repo_id}: hub model is not available: {why}; {fix}") from None
    return Path(got)


def _read_config(path: Path, kind: str) -> dict:
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: missing; a genkit model folder holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                              "(write one with `genkit export pretrained`)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_path}: not a readable JSON config ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict) or KIND_KEY not in config:
        raise CheckpointError(f"{config_path}: not a genkit model config (no {KIND_KEY!r} entry)")
    if config[KIND_KEY] != kind:
        raise CheckpointError(f"{config_path}: holds a {config[KIND_KEY]} model, not a {kind}")
    if config.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: model folder format {config.get('format')!r} is not supported "
                              f"(expected {FORMAT_VERSION})")
    return config


def read_weights(weights_path: Path) -> dict:
    """The tensors of a ``model.safetensors``: a missing, unreadable or non-finite file is one line naming it."""
    import torch

    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: missing; the model folder has no weights")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{weights_path}: reading model folders needs safetensors "
                              "(pip install 'genkit[export]')") from None
    try:
        state = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own errors for damaged headers/data
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsFileError(f"{weights_path}: not a readable safetensors file ({first})") from None
    if not state:
        raise WeightsFileError(f"{weights_path}: holds no tensors")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise WeightsFileError(f"{weights_path}: holds NaN or infinite values in {bad[0]!r}{more}; refused")
    return state


def read(source: str | Path, kind: str) -> ModelFolder:
    """Read the model folder (or hub model) ``source`` of ``kind`` (one of :data:`KINDS`)."""
    path = local_path(source)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a model folder")
    config = _read_config(path, kind)
    return ModelFolder(path=path, config=config, state=read_weights(path / WEIGHTS_NAME))


def weights_sha256(source: str | Path) -> str:
    """The identity of a model's weights: the sha256 of a checkpoint file or of a folder's ``model.safetensors``."""
    from genkit.core.weights import sha256_file

    path = local_path(source)
    return sha256_file(path / WEIGHTS_NAME if path.is_dir() else path)


def new_config(kind: str, block_key: str, block: dict, **extra) -> dict:
    """A ``config.json`` for ``kind`` holding the loader's ``block`` under ``block_key``."""
    from genkit import __version__

    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return {KIND_KEY: kind, "format": FORMAT_VERSION, "library_name": "genkit", "genkit_version": __version__,
            block_key: block, **extra}


def state_bytes(state: dict) -> bytes:
    """``model.safetensors``'s bytes for ``state`` (contiguous CPU tensors, the hub's ``format: pt`` header)."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in state.items()}, metadata={"format": "pt"})


def state_sha256(state: dict) -> str:
    """The weights' identity: the sha256 of the ``model.safetensors`` that holds ``state``."""
    import hashlib

    return hashlib.sha256(state_bytes(state)).hexdigest()


def write(folder: str | Path, config: dict, state: dict, card: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` (contiguous CPU tensors) and the card, each atomically."""
    from genkit.core.files import atomic_write_bytes, atomic_write_json, atomic_write_text

    folder = Path(folder)
    atomic_write_bytes(folder / WEIGHTS_NAME, state_bytes(state))
    atomic_write_json(folder / CONFIG_NAME, config)
    if card is not None:
        atomic_write_text(folder / CARD_NAME, card)
    return folder

"""Registry of the pretrained weights genkit uses, with an offline policy and safe loading.

Each entry names the file its own library downloads (torchvision, torch-fidelity, lpips), the URL, and the
sha256 prefix embedded in the file name (the check ``torch.hub`` performs). Files live in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``) unless ``GENKIT_WEIGHTS_DIR`` points elsewhere, so a file that torchvision
already downloaded is found. Loading is ``torch.load(weights_only=True)``: no arbitrary unpickling.

Offline, a missing file raises :class:`~genkit.errors.WeightsUnavailableError` within seconds, naming the file,
where to put it and how to import it. Random weights are an explicit choice (``allow_random``); every use is
logged loudly and recorded in :func:`provenance`, which outputs copy into their metadata.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from genkit.errors import WeightsUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file_name: str
    url: str
    sha256_prefix: str
    description: str


REGISTRY: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry("vgg19", "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                     "dcbb9e9d", "torchvision VGG-19 (ImageNet) - style model encoder and perceptual losses"),
        WeightsEntry("inception-fid", "weights-inception-2015-12-05-6726825d.pth",
                     "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                     "weights-inception-2015-12-05-6726825d.pth",
                     "6726825d", "FID/KID Inception (TF 2015-12-05 graph, as used by torch-fidelity)"),
        WeightsEntry("lpips-alex", "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                     "7be5be79", "torchvision AlexNet (ImageNet) - LPIPS trunk (net='alex')"),
        WeightsEntry("lpips-vgg", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                     "397923af", "torchvision VGG-16 (ImageNet) - LPIPS trunk (net='vgg')"),
        # The Caffe VGG-19 (Simonyan & Zisserman) converted by jcjohnson/pytorch-vgg, whose file name carries the
        # sha256 prefix (t7_to_state_dict.py). Mirror: https://s3-us-west-2.amazonaws.com/jcjohns-models/
        WeightsEntry("vgg19-caffe", "vgg19-d01eb7cb.pth",
                     "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth", "d01eb7cb",
                     "Caffe VGG-19 (BGR, 0-255, mean subtraction) - the official reshuffle release's encoder "
                     "(variant=caffe)"),
        # BiSeNet face parser of zllrunning/face-parsing.PyTorch (MIT), trained on CelebAMask-HQ. The original is on
        # Google Drive (id 154JgKpzCPW82qINcVieuPH3fZ2e0P812), which cannot be fetched by URL; this Hugging Face
        # mirror serves the same file (also hf repo vivym/face-parsing-bisenet). The full sha256 is checked: the one
        # the mirrors' LFS pointers and clibdev/face-parsing.PyTorch's release list publish (not downloaded here).
        # For an HF-hub source: repo_id="ManyOtherFunctions/face-parse-bisent", filename="79999_iter.pth".
        WeightsEntry("bisenet-celebamask", "79999_iter.pth",
                     "https://huggingface.co/ManyOtherFunctions/face-parse-bisent/resolve/main/79999_iter.pth",
                     "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
                     "BiSeNet face parser (CelebAMask-HQ, 19 classes) - genkit parse --parser bisenet-celebamask"),
    )
}

# name -> {"file": path or None, "sha256": hex or None, "random": bool}; what this process actually used.
_PROVENANCE: dict[str, dict] = {}
_HASH_CACHE: dict[tuple[str, int, float], str] = {}


def get_entry(name: str) -> WeightsEntry:
    if name not in REGISTRY:
        raise WeightsUnavailableError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def cache_dir() -> Path:
    env = os.environ.get("GENKIT_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(name: str) -> Path:
    return cache_dir() / get_entry(name).file_name


def sha256_file(path: str | Path) -> str:
    """Full sha256 of a file (memoised per path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def status(name: str) -> str:
    """``present``, ``missing`` or ``hash mismatch`` for the cached file of ``name``."""
    path = weights_path(name)
    if not path.exists():
        return "missing"
    return "present" if sha256_file(path).startswith(get_entry(name).sha256_prefix) else "hash mismatch"


def _offline() -> bool:
    return os.environ.get("GENKIT_OFFLINE", "").lower() in ("1", "true", "yes")


def missing_message(name: str, reason: str = "") -> str:
    e = get_entry(name)
    path = weights_path(name)
    return (
        f"pretrained weights '{name}' are not available{': ' + reason if reason else ''}.\n"
        f"  file:      {e.file_name} ({e.description})\n"
        f"  expected:  {path}\n"
        f"  download:  {e.url}\n"
        f"  fix:       copy the file there, or run `genkit weights import {name} /path/to/{e.file_name}`\n"
        f"             (set GENKIT_WEIGHTS_DIR to use another folder).\n"
        f"  or run anyway with RANDOM weights (numbers and images are then meaningless): "
        f"weights.allow_random=true / --allow-random"
    )


def resolve(name: str, download: bool = True) -> Path:
    """Path of a verified weights file, downloading it through ``torch.hub`` when possible."""
    e = get_entry(name)
    path = weights_path(name)
    if path.exists():
        digest = sha256_file(path)
        if not digest.startswith(e.sha256_prefix):
            raise WeightsUnavailableError(missing_message(
                name, f"{path} has sha256 {digest[:16]}..., expected a hash starting with {e.sha256_prefix}"))
        return path
    if not download or _offline():
        raise WeightsUnavailableError(missing_message(name, "not in the cache and downloads are off"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(e.url, str(path), hash_prefix=e.sha256_prefix, progress=True)
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, hash errors: all mean "not available"
        raise WeightsUnavailableError(missing_message(name, f"download failed ({type(exc).__name__}: {exc})")) from None
    return path


def load_state_dict(name: str, path: str | Path | None = None, download: bool = True) -> dict:
    """Safely load a state dict: a registry entry's file, or an explicit ``path`` (e.g. ``--weights``)."""
    path = Path(path).expanduser() if path is not None else resolve(name, download=download)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} does not exist (given for '{name}')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise WeightsUnavailableError(f"{path}: cannot be loaded safely as a state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    record(name, path=path)
    return state


def record(name: str, path: str | Path | None = None, random: bool = False) -> None:
    """Remember which weights this process used (for output metadata and metric protocols)."""
    if random:
        _PROVENANCE[name] = {"file": None, "sha256": None, "random": True}
    else:
        _PROVENANCE[name] = {"file": str(path), "sha256": sha256_file(path), "random": False}


def warn_random(name: str, consumer: str) -> None:
    msg = (f"RANDOM WEIGHTS: '{name}' is not available, {consumer} runs with randomly initialised weights "
           f"(allow_random=true). Results are NOT meaningful for quality; outputs are marked.")
    log.warning(msg)
    import warnings

    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    record(name, random=True)


def provenance() -> dict[str, dict]:
    return {k: dict(v) for k, v in _PROVENANCE.items()}


def used_random_weights() -> bool:
    return any(v["random"] for v in _PROVENANCE.values())


def load_or_random(name: str, consumer: str, allow_random: bool, path: str | Path | None = None) -> dict | None:
    """The state dict of ``name``; ``None`` (after a loud warning) when missing and ``allow_random`` is set."""
    try:
        return load_state_dict(name, path=path)
    except WeightsUnavailableError:
        if not allow_random or path is not None:
            raise
        warn_random(name, consumer)
        return None


def import_weights(name: str, file: str | Path) -> Path:
    """Check a local file's hash against the registry and copy it (atomically) into the cache."""
    e = get_entry(name)
    file = Path(file)
    if not file.is_file():
        raise WeightsUnavailableError(f"{file}: file does not exist")
    digest = sha256_file(file)
    if not digest.startswith(e.sha256_prefix):
        raise WeightsUnavailableError(
            f"{file}: sha256 {digest[:16]}... does not match '{name}' ({e.file_name}, expected prefix "
            f"{e.sha256_prefix}); is this the right file?")
    dest = weights_path(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(file, tmp)
    os.replace(tmp, dest)
    return dest

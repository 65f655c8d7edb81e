"""Registry of the pretrained weights genkit uses, with an offline policy, verified downloads and safe loading.

Each entry names the file its own library downloads (torchvision, torch-fidelity, lpips), where to get it (a URL,
or a file on the Hugging Face hub: :class:`HFSource`), and its hash: the sha256 prefix embedded in the file name
(the check ``torch.hub`` performs) or a full ``sha256``. Files live in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``) unless ``GENKIT_WEIGHTS_DIR`` points elsewhere, so a file that torchvision
already downloaded is found. Loading is ``torch.load(weights_only=True)``: no arbitrary unpickling.

Downloads have connect and read timeouts (``GENKIT_DOWNLOAD_TIMEOUT`` seconds, default 30), land in a temporary
file next to the cache file and are renamed into place only once their hash matches. Offline
(``GENKIT_OFFLINE=1``), a missing file raises :class:`~genkit.core.errors.WeightsUnavailableError` within seconds,
naming the file, where to put it and how to import it. Random weights are an explicit choice (``allow_random``);
every use is logged loudly and recorded in :func:`provenance`, which outputs copy into their metadata. A file that
is present but wrong (hash mismatch, not a state dict, NaN values, wrong keys or shapes) is a
:class:`~genkit.core.errors.WeightsFileError`, which ``allow_random`` never replaces by random weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from genkit.core.errors import ConfigError, WeightsFileError, WeightsUnavailableError

log = logging.getLogger(__name__)

DEFAULT_DOWNLOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class HFSource:
    """A file on the Hugging Face hub, downloaded with ``huggingface_hub.hf_hub_download``."""

    repo_id: str
    filename: str
    revision: str | None = None

    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/blob/{self.revision or 'main'}/{self.filename}"

    def __str__(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class WeightsEntry:
    """One registered weights file. ``url`` and/or ``hf`` say where it comes from; ``sha256_prefix`` (the hash
    prefix in torch.hub-style file names) and/or ``sha256`` (the full hash) how it is verified."""

    name: str
    file_name: str
    url: str | None
    sha256_prefix: str | None
    description: str
    sha256: str | None = None
    hf: HFSource | None = None

    def __post_init__(self):
        if not (self.sha256 or self.sha256_prefix):
            raise ValueError(f"weights entry {self.name!r} needs a sha256 or a sha256_prefix to verify its file")
        if not (self.url or self.hf):
            raise ValueError(f"weights entry {self.name!r} needs a url or a Hugging Face source")

    def matches(self, digest: str) -> bool:
        """Whether a file's full sha256 is this entry's (the full hash when known, else the prefix)."""
        if self.sha256:
            return digest == self.sha256.lower()
        return digest.startswith(self.sha256_prefix.lower())

    def expected(self) -> str:
        return f"sha256 {self.sha256}" if self.sha256 else f"a hash starting with {self.sha256_prefix}"

    def source(self) -> str:
        return str(self.hf) if self.hf else str(self.url)


REGISTRY: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        WeightsEntry("vgg19", "vgg19-dcbb9e9d.pth", "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                     "dcbb9e9d", "torchvision VGG-19 (ImageNet) - style model encoder and perceptual losses"),
        WeightsEntry("inception-fid", "weights-inception-2015-12-05-6726825d.pth",
                     "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                     "weights-inception-2015-12-05-6726825d.pth",
                     "6726825d", "FID/KID Inception (TF 2015-12-05 graph, as used by torch-fidelity)"),
        # pytorch-fid's port of the same TF graph (torchvision InceptionV3 key layout with its FID blocks); clean-fid's
        # legacy_pytorch mode downloads the same file. The name carries the sha256 prefix (torch.hub's check).
        WeightsEntry("inception-pytorch-fid", "pt_inception-2015-12-05-6726825d.pth",
                     "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                     "pt_inception-2015-12-05-6726825d.pth",
                     "6726825d", "FID Inception as pytorch-fid ports it (--protocol pytorch-fid, clean-fid-legacy-pytorch)"),
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
_HASH_CACHE: dict[tuple, str] = {}


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


def download_timeout() -> float:
    """Connect and read timeout of downloads, in seconds: ``GENKIT_DOWNLOAD_TIMEOUT`` (default 30)."""
    env = os.environ.get("GENKIT_DOWNLOAD_TIMEOUT")
    if not env:
        return DEFAULT_DOWNLOAD_TIMEOUT
    try:
        value = float(env)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"GENKIT_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {env!r}")
    return value


def sha256_file(path: str | Path) -> str:
    """Full sha256 of a file (memoised per path, size, mtime and inode)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def status(name: str) -> str:
    """``present``, ``missing``, ``hash mismatch`` or ``not a file`` for the cached file of ``name``."""
    path = weights_path(name)
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    return "present" if get_entry(name).matches(sha256_file(path)) else "hash mismatch"


def _offline() -> bool:
    return os.environ.get("GENKIT_OFFLINE", "").lower() in ("1", "true", "yes")


def missing_message(name: str, reason: str = "") -> str:
    e = get_entry(name)
    path = weights_path(name)
    where = e.hf.url() if e.hf else e.url
    return (
        f"pretrained weights '{name}' are not available{': ' + reason if reason else ''}.\n"
        f"  file:      {e.file_name} ({e.description})\n"
        f"  expected:  {path}\n"
        f"  download:  {where}\n"
        f"  fix:       copy the file there, or run `genkit weights import {name} /path/to/{e.file_name}`\n"
        f"             (set GENKIT_WEIGHTS_DIR to use another folder, GENKIT_DOWNLOAD_TIMEOUT for slow links).\n"
        f"  or run anyway with RANDOM weights (numbers and images are then meaningless): "
        f"weights.allow_random=true / --allow-random"
    )


def mismatch_message(name: str, path: Path, digest: str) -> str:
    """One line: a present file whose hash is not the registry's, and how to fix it."""
    e = get_entry(name)
    return (f"{path}: sha256 {digest[:16]}... does not match '{name}' (expected {e.expected()}); the file is "
            f"damaged (e.g. an interrupted copy) or a different file. delete it to download it again, or install "
            f"the right file with `genkit weights import {name} FILE`; --allow-random never replaces a present file")


def resolve(name: str, download: bool = True) -> Path:
    """Path of a verified weights file, downloading it (with timeouts, verified before it lands) when possible."""
    e = get_entry(name)
    path = weights_path(name)
    if path.exists() or path.is_symlink():
        if path.is_dir():
            raise WeightsFileError(f"{path}: is a directory, not the weights file '{name}' ({e.file_name}); "
                                   "remove it")
        if not path.is_file():
            raise WeightsFileError(f"{path}: is not a regular file (a dangling link?); remove it")
        digest = sha256_file(path)
        if not e.matches(digest):
            raise WeightsFileError(mismatch_message(name, path, digest))
        return path
    if not download or _offline():
        raise WeightsUnavailableError(missing_message(name, "not in the cache and downloads are off"))
    timeout = download_timeout()
    try:
        if e.hf is not None:
            _download_hf(e, path, timeout)
        else:
            _download_url(e, path, timeout)
    except WeightsUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, HTTP errors: all mean "not available"
        raise WeightsUnavailableError(missing_message(name, f"download failed ({_describe(exc, timeout)})")) from None
    log.info("downloaded %s -> %s (%s)", e.source(), path, e.expected())
    return path


def _describe(exc: BaseException, timeout: float) -> str:
    import socket

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in text.lower():
        return f"no answer: timed out after {timeout:g} s (GENKIT_DOWNLOAD_TIMEOUT)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _verify_download(e: WeightsEntry, tmp: Path, digest: str) -> None:
    if not e.matches(digest):
        raise WeightsUnavailableError(missing_message(
            e.name, f"download failed: the downloaded file's sha256 {digest[:16]}... does not match "
                    f"(expected {e.expected()}); it was discarded"))


def _download_url(e: WeightsEntry, dest: Path, timeout: float) -> None:
    """Stream ``e.url`` into a temporary file next to ``dest`` (hashing as it goes); rename once verified.

    ``timeout`` bounds the connection and every read (a server that stops answering fails after ``timeout`` s).
    """
    import urllib.request

    from tqdm.auto import tqdm

    from genkit.core.files import atomic_path

    request = urllib.request.Request(e.url, headers={"User-Agent": "genkit"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - registry URLs only
        total = response.headers.get("Content-Length")
        h = hashlib.sha256()
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as f, tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                                            desc=e.file_name, leave=False, disable=None) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
            if total is not None and tmp.stat().st_size != int(total):
                raise OSError(f"connection closed after {tmp.stat().st_size} of {total} bytes")
            _verify_download(e, tmp, h.hexdigest())


@contextlib.contextmanager
def _hf_timeouts(timeout: float):
    """huggingface_hub reads its download timeout from ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` at call time."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_DOWNLOAD_TIMEOUT
    constants.HF_HUB_DOWNLOAD_TIMEOUT = max(1, int(round(timeout)))
    try:
        yield
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT = saved


def _download_hf(e: WeightsEntry, dest: Path, timeout: float) -> None:
    """Download ``e.hf`` with ``hf_hub_download`` into a temporary folder next to ``dest``; rename once verified."""
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsUnavailableError(missing_message(
            e.name, "it is hosted on the Hugging Face hub and huggingface_hub is not installed "
                    "(pip install huggingface_hub)")) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", suffix=".hf", dir=dest.parent) as tmpdir:
        with _hf_timeouts(timeout):
            got = Path(huggingface_hub.hf_hub_download(e.hf.repo_id, e.hf.filename, revision=e.hf.revision,
                                                       local_dir=tmpdir, etag_timeout=timeout))
        _verify_download(e, got, sha256_file(got))
        os.chmod(got, 0o666 & ~_umask())
        os.replace(got, dest)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------- loading


def load_state_dict(name: str, path: str | Path | None = None, download: bool = True) -> dict:
    """Safely load a state dict: a registry entry's file, or an explicit ``path`` (e.g. ``--weights``).

    Every unusable file is one :class:`~genkit.core.errors.WeightsFileError` line naming it: a directory, an empty or
    truncated file, pickled objects, something other than a dict of tensors, NaN or infinite values.
    """
    path = Path(path).expanduser() if path is not None else resolve(name, download=download)
    if path.is_dir():
        raise WeightsFileError(f"{path}: is a directory, not a weights file (given for '{name}')")
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} does not exist (given for '{name}')")
    if path.stat().st_size == 0:
        raise WeightsFileError(f"{path}: the weights file is empty (0 bytes)")
    import pickle
    import zipfile

    from genkit.core.checkpoints import check_archive

    if zipfile.is_zipfile(path):
        check_archive(path, "weights", WeightsFileError)  # before anything is inflated
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsFileError(f"{path}: cannot be loaded safely as a state dict (it holds objects that "
                               f"weights_only=True refuses: {_unpickling_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - zip/EOF/runtime errors of a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsFileError(f"{path}: not a readable PyTorch weights file (truncated or corrupt: {first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    check_state_dict(state, path)
    record(name, path=path)
    return state


def _unpickling_reason(exc: BaseException) -> str:
    """The informative line of torch's long weights_only message (``Unsupported global: ...``)."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(exc).splitlines()]
    for ln in lines:
        if "Unsupported" in ln or "WeightsUnpickler error" in ln:
            return ln.replace("WeightsUnpickler error: ", "")
    return next((ln for ln in lines if ln), type(exc).__name__)


def check_state_dict(state, path: str | Path) -> None:
    """A dict of finite tensors, or a one-line :class:`WeightsFileError` naming ``path`` and the problem."""
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path}: holds a {type(state).__name__}, not a state dict (a dict of named tensors)")
    if not state:
        raise WeightsFileError(f"{path}: holds an empty state dict")
    bad = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsFileError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                                   "not a state dict")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(str(key))
    if bad:
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise WeightsFileError(f"{path}: holds NaN or infinite values in {bad[0]!r}{more}; the file is damaged")


def state_mismatch(expected: dict, state: dict, prefix: str = "") -> str | None:
    """One line naming the keys and shapes by which ``state`` does not fit ``expected`` (a module's
    ``state_dict()``), or ``None`` when it fits. ``prefix``: how the file names the keys."""
    missing = [prefix + k for k in expected if k not in state]
    unexpected = [prefix + k for k in state if k not in expected]
    shapes = [f"{prefix}{k} {tuple(state[k].shape)} where {tuple(v.shape)} is expected"
              for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return None

    def show(items, label):
        return f"{len(items)} {label} " + ", ".join(items[:3]) + (" ..." if len(items) > 3 else "")

    return "; ".join(show(items, label) for items, label in ((missing, "missing"), (unexpected, "unexpected"),
                                                             (shapes, "wrong shape:")) if items)


def load_into(module: torch.nn.Module, state: dict, path: str | Path | None, what: str, prefix: str = "") -> None:
    """``module.load_state_dict(state)`` with keys and shapes compared first: a mismatch is one
    :class:`WeightsFileError` line naming the file (missing keys, unexpected keys, wrong shapes). ``prefix``:
    how the file names the keys (``"features."`` when ``state`` is a sub-dict of the file's)."""
    problem = state_mismatch(module.state_dict(), state, prefix)
    if problem:
        raise WeightsFileError(f"{path or 'state dict'}: does not fit {what}: {problem}")
    module.load_state_dict(state, strict=True)


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
    """The state dict of ``name``; ``None`` (after a loud warning) when the file is missing and cannot be
    downloaded and ``allow_random`` is set. A present but wrong file is always an error."""
    try:
        return load_state_dict(name, path=path)
    except WeightsUnavailableError:
        if not allow_random or path is not None:
            raise
        warn_random(name, consumer)
        return None


def import_weights(name: str, file: str | Path) -> Path:
    """Check a local file's hash against the registry and copy it (atomically) into the cache."""
    from genkit.core.files import atomic_path

    e = get_entry(name)
    file = Path(file)
    if file.is_dir():
        raise WeightsFileError(f"{file}: is a directory, not a weights file")
    if not file.is_file():
        raise WeightsUnavailableError(f"{file}: file does not exist")
    digest = sha256_file(file)
    if not e.matches(digest):
        raise WeightsFileError(
            f"{file}: sha256 {digest[:16]}... does not match '{name}' ({e.file_name}, expected {e.expected()}); "
            "is this the right file?")
    dest = weights_path(name)
    with atomic_path(dest) as tmp:
        shutil.copyfile(file, tmp)
    return dest

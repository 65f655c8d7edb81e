"""FID statistics (mean and covariance of Inception features): running sums, ``.npz`` files, and a cache.

* :class:`RunningStats` keeps float64 running sums (sum, sum of outer products, count): memory does not grow
  with the number of images, and sums from several processes or batches simply add up.
* ``.npz`` files use pytorch-fid's format (arrays ``mu`` and ``sigma``), so statistics move between genkit,
  pytorch-fid and torch-fidelity. genkit adds ``num_samples`` and a JSON ``protocol``; other tools ignore them.
* Reference statistics of a folder are computed once and cached under ``$GENKIT_CACHE_DIR/stats`` (default
  ``~/.cache/genkit/stats``). An entry is found by the folder's path and the protocol (weights sha256 or RANDOM +
  seed, feature layer, resize mode, image-reading policy, skip_errors) and is valid for one identity of the folder's files: name,
  size, ``mtime_ns``, ``ctime_ns``, inode and device of each (a replaced file always gets a new ctime, whatever
  its size and mtime). A folder has at most one entry per protocol: a new identity replaces the old entry.
* Entries are compact: with N <= 2048 samples the features themselves (N x 2048 float32; the covariance is
  recomputed from them, exactly as on a miss), otherwise the mean and the upper triangle of the covariance
  (16.8 MB). The cache is capped (``GENKIT_STATS_CACHE_MAX``, default 1 GiB); the least recently used entries
  are evicted first.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genkit.core.errors import ConfigError, DataError
from genkit.core.files import atomic_write_bytes
from genkit.metrics import keys

log = logging.getLogger(__name__)


@dataclass
class FIDStats:
    """Gaussian statistics of a set of features (float64)."""

    mu: np.ndarray
    sigma: np.ndarray
    num_samples: int | None = None
    protocol: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


class RunningStats:
    """float64 running sums of features: ``sum``, ``sum of outer products``, ``count``."""

    def __init__(self, dim: int = keys.INCEPTION_NUM_FEATURES, device: torch.device | str = "cpu"):
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        self.count = 0

    def update(self, features: torch.Tensor) -> None:
        f = features.detach().to(self.sum.device, torch.float64)
        if f.dim() != 2 or f.shape[1] != self.sum.shape[0]:
            raise ValueError(f"expected features (N, {self.sum.shape[0]}), got {tuple(f.shape)}")
        self.sum += f.sum(dim=0)
        self.outer += f.T @ f
        self.count += f.shape[0]

    def stats(self, protocol: dict | None = None, source: str | Path | None = None) -> FIDStats:
        mu, sigma = stats_from_sums(self.sum, self.outer, self.count, source)
        return FIDStats(mu.cpu().numpy(), sigma.cpu().numpy(), self.count, dict(protocol or {}))


def stats_from_sums(total: torch.Tensor, outer: torch.Tensor, count: int | torch.Tensor,
                    source: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (like ``np.cov``) from float64 sums; at least two samples are needed."""
    n = int(count)
    if n < 2:
        raise DataError(source, f"FID statistics need at least 2 images, got {n}")
    total, outer = total.double(), outer.double()
    mu = total / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    sigma = 0.5 * (sigma + sigma.T)
    return mu, sigma


def stats_from_features(features: torch.Tensor | np.ndarray, protocol: dict | None = None,
                        source: str | Path | None = None) -> FIDStats:
    """Mean and unbiased covariance of all features (N, D) at once, in float64, from the centred features.

    Centring first avoids the cancellation of ``sum f f^T - N mu mu^T``. Deterministic for the same array, so
    statistics recomputed from cached features equal the ones computed from the images.
    """
    f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"expected features (N, D), got shape {f.shape}")
    n = f.shape[0]
    if n < 2:
        raise DataError(source, f"FID statistics need at least 2 images, got {n}")
    mu = f.mean(axis=0)
    c = f - mu
    sigma = c.T @ c / (n - 1)
    return FIDStats(mu, 0.5 * (sigma + sigma.T), n, dict(protocol or {}))


# ------------------------------------------------------------------------------------------------- .npz


def save_npz(stats: FIDStats, path: str | Path) -> Path:
    """Write pytorch-fid's ``.npz`` (``mu``, ``sigma``) plus genkit's ``num_samples`` and ``protocol``, atomically."""
    buf = io.BytesIO()
    extra = {}
    if stats.num_samples is not None:
        extra["num_samples"] = np.asarray(stats.num_samples, dtype=np.int64)
    if stats.protocol:
        extra["protocol"] = np.asarray(json.dumps(stats.protocol, sort_keys=True, default=str))
    np.savez(buf, mu=np.asarray(stats.mu, dtype=np.float64), sigma=np.asarray(stats.sigma, dtype=np.float64), **extra)
    return atomic_write_bytes(path, buf.getvalue())


NPZ_EXPECTED = ("expected a NumPy .npz archive with 'mu' and 'sigma' arrays, as pytorch-fid and `genkit eval stats` "
                "write")


def _not_statistics(path: Path, reason: str) -> DataError:
    return DataError(path, f"not a valid FID statistics .npz ({reason}); {NPZ_EXPECTED}")


def _numeric(data, name: str, path: Path) -> np.ndarray:
    """Array ``name`` of an open .npz as float64; object (pickled) or non-numeric arrays are refused, never loaded."""
    try:
        array = data[name]
    except ValueError:  # numpy refuses object arrays without allow_pickle, which genkit never sets
        raise _not_statistics(path, f"'{name}' holds Python objects") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise _not_statistics(path, f"'{name}' is not numeric ({array.dtype})")
    return np.asarray(array, dtype=np.float64)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, int | None, dict]:
    """``mu``, ``sigma``, the sample count and protocol (genkit's files) of a statistics file."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile, EOFError):  # numpy's "pickled data" error means: no npy/npz magic
        raise _not_statistics(path, "it is not a NumPy .npz archive") from None
    except OSError as exc:
        raise DataError(path, f"statistics file cannot be read ({exc.strerror or exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _not_statistics(path, "it holds a single .npy array, not an .npz archive")
    try:
        with loaded as data:
            names = set(data.files)
            missing = {"mu", "sigma"} - names
            if missing:
                raise DataError(path, f"not an FID statistics file: arrays {sorted(missing)} are missing "
                                f"(found {sorted(names)}; expected pytorch-fid's 'mu' and 'sigma')")
            mu, sigma = _numeric(data, "mu", path), _numeric(data, "sigma", path)
            n = int(data["num_samples"]) if "num_samples" in names else None
            protocol = json.loads(str(data["protocol"])) if "protocol" in names else {}
    except DataError:
        raise
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise _not_statistics(path, f"damaged: {type(exc).__name__}") from None
    return mu, sigma, n, protocol


def load_npz(path: str | Path, expected_dim: int | None = keys.INCEPTION_NUM_FEATURES) -> FIDStats:
    """Read an ``.npz`` of FID statistics (pytorch-fid, torch-fidelity or genkit); clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "statistics file does not exist")
    mu, sigma, n, protocol = _read_npz(path)
    if mu.ndim != 1 or sigma.ndim != 2 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(path, f"inconsistent FID statistics: mu has shape {mu.shape}, sigma {sigma.shape} "
                        "(expected (D,) and (D, D))")
    if expected_dim is not None and mu.shape[0] != expected_dim:
        raise DataError(path, f"FID statistics of dimension {mu.shape[0]}, expected {expected_dim} "
                        f"(Inception pool3 features); this file was made with another feature layer or network")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(path, "FID statistics contain NaN or infinite values")
    check_covariance(sigma, path)
    return FIDStats(mu, sigma, n, protocol)


COVARIANCE_RTOL = 1e-6  # asymmetry and negative eigenvalues allowed, relative to the covariance's largest entry


def check_covariance(sigma: np.ndarray, source: str | Path | None = None, rtol: float = COVARIANCE_RTOL) -> None:
    """Refuse a covariance that is not symmetric positive semi-definite within ``rtol`` (relative to its scale).

    A covariance of real features is symmetric and has no negative eigenvalue beyond rounding; anything else (e.g.
    ``sigma = -I``, which the pivoted-Cholesky square root would read as rank 0 and score as FID 0) is an error.
    """
    scale = float(np.abs(sigma).max()) if sigma.size else 0.0
    asym = float(np.abs(sigma - sigma.T).max()) if sigma.size else 0.0
    if asym > rtol * max(scale, 1e-300):
        raise DataError(source, f"the covariance 'sigma' is not symmetric (largest |sigma - sigma^T| = {asym:.3g}, "
                        f"its largest entry {scale:.3g}); these are not FID statistics")
    if sigma.size == 0:
        return
    lowest = float(np.linalg.eigvalsh(0.5 * (sigma + sigma.T))[0])
    if lowest < -rtol * scale:
        raise DataError(source, f"the covariance 'sigma' is not positive semi-definite (eigenvalue {lowest:.3g}, its "
                        f"largest entry {scale:.3g}); no set of features has this covariance")


# ------------------------------------------------------------------------------------------------ cache

ENV_CACHE_MAX = "GENKIT_STATS_CACHE_MAX"
DEFAULT_CACHE_MAX = 1 << 30  # 1 GiB: ~60 entries of N > 2048 images, thousands of small ones
CACHE_FORMAT = 2  # 1: full float64 sigma per entry, keyed by name/size/mtime only
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def stats_cache_dir() -> Path:
    """``$GENKIT_CACHE_DIR/stats``, default ``~/.cache/genkit/stats``."""
    root = os.environ.get("GENKIT_CACHE_DIR")
    base = Path(root).expanduser() if root else Path("~/.cache/genkit").expanduser()
    return base / "stats"


def parse_size(text: str | int, what: str = "size") -> int:
    """``"1GB"``, ``"500 MiB"``, ``"0"``, ``12345`` -> bytes (K, M, G, T are binary: 1 KB = 1024 bytes)."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*", str(text))
        unit = m.group(2).lower() if m else None
        if not m or unit not in _UNITS:
            raise ConfigError(f"{what}: cannot read {text!r} as a size (examples: 1GB, 500MB, 0)")
        value = int(float(m.group(1)) * _UNITS[unit])
    if value < 0:
        raise ConfigError(f"{what}: a size cannot be negative ({text!r})")
    return value


def cache_max_bytes() -> int:
    """The cache's size cap: ``$GENKIT_STATS_CACHE_MAX`` (e.g. ``2GB``; ``0`` stores nothing), default 1 GiB."""
    text = os.environ.get(ENV_CACHE_MAX)
    return DEFAULT_CACHE_MAX if text in (None, "") else parse_size(text, ENV_CACHE_MAX)


def protocol_fingerprint(protocol: dict) -> dict:
    """The parts of an extractor protocol that change the numbers (not, e.g., the weights file's location)."""
    out = {k: protocol.get(k) for k in (keys.KEY_WEIGHTS, "random_init", "feature", keys.KEY_RESIZE, "input",
                                        "image_reading", "skip_errors")}
    if protocol.get(keys.KEY_FID_PROTOCOL, "torch-fidelity") != "torch-fidelity":  # torch-fidelity keys unchanged
        out[keys.KEY_FID_PROTOCOL] = protocol[keys.KEY_FID_PROTOCOL]
    return out


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def file_identity(path: Path) -> list:
    """What identifies a file's content without reading it: name, size, mtime_ns, ctime_ns, inode, device.

    ``ctime`` changes whenever the file's data or inode changes and cannot be set back by the user (unlike
    ``mtime``), so a same-size replacement with a restored mtime still gets a new identity.
    """
    try:
        st = path.stat()
    except OSError:  # a dangling link named like an image: reading reports it (or skips it)
        return [path.name, None, None, None, None, None]
    return [path.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def cache_slot(folder: str | Path, protocol: dict) -> str:
    """One slot per (folder, protocol): a folder's entry under that protocol, whatever its files are now."""
    return _digest({"format": CACHE_FORMAT, "folder": str(Path(folder).resolve()),
                    "input_size": keys.INCEPTION_INPUT_SIZE, "protocol": protocol_fingerprint(protocol)})


def content_key(files: list[Path]) -> str:
    return _digest([file_identity(f) for f in files])


def _label(folder: str | Path) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(folder).resolve().name)[:40] or "root"


def cache_path(folder: str | Path, files: list[Path], protocol: dict) -> Path:
    """``<label>-<slot>-<content>.npz`` in :func:`stats_cache_dir`."""
    return stats_cache_dir() / f"{_label(folder)}-{cache_slot(folder, protocol)[:16]}-{content_key(files)[:16]}.npz"


def _slot_prefix(path: Path) -> str:
    return path.name.rsplit("-", 1)[0] + "-"


def _triu_indices(d: int):
    return np.triu_indices(d)


def encode_entry(stats: FIDStats, features: np.ndarray | torch.Tensor | None, meta: dict) -> bytes:
    """A cache entry: the features (N <= D) or the mean and packed upper triangle of the covariance."""
    buf = io.BytesIO()
    arrays = {"num_samples": np.asarray(stats.num_samples, dtype=np.int64),
              "protocol": np.asarray(json.dumps(stats.protocol, sort_keys=True, default=str))}
    if features is not None:
        f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        arrays["features"] = f
        representation = "features"
    else:
        arrays["mu"] = np.asarray(stats.mu, dtype=np.float64)
        arrays["sigma_triu"] = np.asarray(stats.sigma, dtype=np.float64)[_triu_indices(stats.dim)]
        representation = "mean + covariance upper triangle"
    arrays["meta"] = np.asarray(json.dumps(dict(meta, format=CACHE_FORMAT, representation=representation),
                                           sort_keys=True))
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_entry(path: Path) -> FIDStats:
    """The statistics held by a cache entry (a :class:`DataError` if it is damaged or of another format)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise DataError(path, "not a cache entry of this genkit version")
            protocol = json.loads(str(data["protocol"]))
            n = int(data["num_samples"])
            if "features" in data.files:
                return stats_from_features(data["features"], protocol, source=path)
            mu = np.asarray(data["mu"], dtype=np.float64)
            packed = np.asarray(data["sigma_triu"], dtype=np.float64)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise DataError(path, f"damaged statistics cache entry ({exc})") from None
    d = mu.shape[0]
    if packed.shape != (d * (d + 1) // 2,):
        raise DataError(path, "damaged statistics cache entry (covariance of the wrong size)")
    sigma = np.zeros((d, d))
    iu = _triu_indices(d)
    sigma[iu] = packed
    sigma.T[iu] = packed
    return FIDStats(mu, sigma, n, protocol)


@dataclass
class CacheEntry:
    """One file of the statistics cache, as ``genkit eval cache list`` shows it."""

    path: Path
    size: int
    last_used: float  # the file's mtime, refreshed on every hit
    folder: str | None = None
    num_samples: int | None = None
    representation: str | None = None
    weights: str | None = None

    @property
    def legacy(self) -> bool:
        return self.representation is None


def _entry_files() -> list[CacheEntry]:
    """The cache's files with size and last use only (no file is opened), least recently used first."""
    d = stats_cache_dir()
    entries = []
    for p in d.glob("*.npz") if d.is_dir() else ():
        try:
            st = p.stat()
        except FileNotFoundError:  # evicted by another process meanwhile
            continue
        entries.append(CacheEntry(p, st.st_size, st.st_mtime))
    return sorted(entries, key=lambda e: (e.last_used, e.path.name))


def _describe(entry: CacheEntry) -> CacheEntry:
    path = entry.path
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" in data.files:
                meta = json.loads(str(data["meta"]))
                protocol = json.loads(str(data["protocol"]))
                entry.folder, entry.representation = meta.get("folder"), meta.get("representation")
                entry.num_samples = int(data["num_samples"])
                entry.weights = protocol.get(keys.KEY_WEIGHTS)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError):
        pass  # listed as a legacy / unreadable entry; eviction and clear still handle it
    return entry


def cache_entries() -> list[CacheEntry]:
    """Every entry of the cache with what it holds (folder, samples, ...), least recently used first."""
    return [_describe(e) for e in _entry_files()]


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def clear_cache(folders: list[str | Path] | None = None) -> list[CacheEntry]:
    """Remove every entry, or (``folders``) only the entries of those folders; returns what was removed."""
    wanted = None if folders is None else {str(Path(f).resolve()) for f in folders}
    removed = []
    for e in cache_entries():
        if (wanted is None or e.folder in wanted) and _remove(e.path):
            removed.append(e)
    return removed


def enforce_cache_cap(max_bytes: int | None = None, keep: Path | None = None) -> list[CacheEntry]:
    """Evict least recently used entries until the cache holds at most ``max_bytes``; returns the evicted ones."""
    cap = cache_max_bytes() if max_bytes is None else max_bytes
    entries = _entry_files()
    total = sum(e.size for e in entries)
    evicted = []
    for e in entries:
        if total <= cap:
            break
        if keep is not None and e.path == keep:
            continue
        if _remove(e.path):
            evicted.append(e)
        total -= e.size
    if evicted:
        log.info("statistics cache over %.1f MiB: evicted %d least recently used entr%s (%.1f MiB)", cap / 2 ** 20,
                 len(evicted), "y" if len(evicted) == 1 else "ies", sum(e.size for e in evicted) / 2 ** 20)
    return evicted


def _store(path: Path, stats: FIDStats, features, folder: str | Path, num_files: int) -> bool:
    """Write one entry, drop the folder's stale entry for this protocol, keep the cache under its cap."""
    data = encode_entry(stats, features, {"folder": str(Path(folder).resolve()), "files": num_files})
    cap = cache_max_bytes()
    if len(data) > cap:
        log.info("statistics of %s not cached: the entry (%.1f MiB) exceeds %s=%.1f MiB", folder,
                 len(data) / 2 ** 20, ENV_CACHE_MAX, cap / 2 ** 20)
        return False
    atomic_write_bytes(path, data)
    prefix = _slot_prefix(path)
    for stale in path.parent.glob(f"{glob.escape(prefix)}*.npz"):
        if stale != path and _remove(stale):
            log.info("removed the stale statistics cache entry %s (the folder's files changed)", stale.name)
    enforce_cache_cap(cap, keep=path)
    return True


def cached_stats(folder: str | Path, files: list[Path], protocol: dict,
                 compute: Callable[[], tuple[FIDStats, np.ndarray | torch.Tensor | None]],
                 use_cache: bool = True, read: bool = True) -> tuple[FIDStats, str]:
    """``(stats, "hit" | "miss" | "written" | "off")``: the cached statistics of the folder, or computed ones
    (then stored). ``compute()`` returns the statistics and, for N <= D, the features they were computed from
    (stored instead of the covariance). ``read=False`` always computes (and refreshes the entry): ``"written"``."""
    if not use_cache:
        return compute()[0], "off"
    path = cache_path(folder, files, protocol)
    if read and path.is_file():
        try:
            stats = decode_entry(path)
            try:
                os.utime(path)  # last use, for least-recently-used eviction
            except OSError:
                pass
            log.info("FID statistics of %s: cache hit (%s)", folder, path)
            return stats, "hit"
        except DataError as exc:  # a damaged cache entry is recomputed, not fatal
            log.warning("ignoring damaged cache entry: %s", exc)
    stats, features = compute()
    try:
        stored = _store(path, stats, features, folder, len(files))
    except OSError as exc:
        log.warning("could not write the statistics cache %s (%s); continuing without it", path, exc)
        return stats, "off"
    if not stored:
        return stats, "off"
    log.info("FID statistics of %s cached in %s", folder, path)
    return stats, "miss" if read else "written"

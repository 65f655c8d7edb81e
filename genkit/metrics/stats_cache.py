"""FID statistics (mean and covariance of Inception features): running sums, ``.npz`` files, and a cache.

* :class:`RunningStats` keeps float64 running sums (sum, sum of outer products, count): memory does not grow
  with the number of images, and sums from several processes or batches simply add up.
* ``.npz`` files use pytorch-fid's format (arrays ``mu`` and ``sigma``), so statistics move between genkit,
  pytorch-fid and torch-fidelity. genkit adds ``num_samples`` and a JSON ``protocol``; other tools ignore them.
* Reference statistics of a folder are computed once and cached under ``$GENKIT_CACHE_DIR/stats`` (default
  ``~/.cache/genkit/stats``), keyed by the folder's path, its file list (names, sizes, mtimes) and the protocol
  (weights sha256 or RANDOM + seed, feature layer, resize mode, image-reading policy, skip_errors).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genkit.errors import DataError
from genkit.io import atomic_write_bytes
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


def stats_from_features(features: torch.Tensor | np.ndarray, protocol: dict | None = None) -> FIDStats:
    f = torch.as_tensor(features).double()
    rs = RunningStats(f.shape[1])
    rs.update(f)
    return rs.stats(protocol)


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


def load_npz(path: str | Path, expected_dim: int | None = keys.INCEPTION_NUM_FEATURES) -> FIDStats:
    """Read an ``.npz`` of FID statistics (pytorch-fid, torch-fidelity or genkit); clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "statistics file does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            missing = {"mu", "sigma"} - names
            if missing:
                raise DataError(path, f"not an FID statistics file: arrays {sorted(missing)} are missing "
                                f"(found {sorted(names)}; expected pytorch-fid's 'mu' and 'sigma')")
            mu = np.asarray(data["mu"], dtype=np.float64)
            sigma = np.asarray(data["sigma"], dtype=np.float64)
            n = int(data["num_samples"]) if "num_samples" in names else None
            protocol = json.loads(str(data["protocol"])) if "protocol" in names else {}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot be read as an .npz of FID statistics ({exc})") from None
    if mu.ndim != 1 or sigma.ndim != 2 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(path, f"inconsistent FID statistics: mu has shape {mu.shape}, sigma {sigma.shape} "
                        "(expected (D,) and (D, D))")
    if expected_dim is not None and mu.shape[0] != expected_dim:
        raise DataError(path, f"FID statistics of dimension {mu.shape[0]}, expected {expected_dim} "
                        f"(Inception pool3 features); this file was made with another feature layer or network")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(path, "FID statistics contain NaN or infinite values")
    return FIDStats(mu, sigma, n, protocol)


# ------------------------------------------------------------------------------------------------ cache


def stats_cache_dir() -> Path:
    """``$GENKIT_CACHE_DIR/stats``, default ``~/.cache/genkit/stats``."""
    root = os.environ.get("GENKIT_CACHE_DIR")
    base = Path(root).expanduser() if root else Path("~/.cache/genkit").expanduser()
    return base / "stats"


def protocol_fingerprint(protocol: dict) -> dict:
    """The parts of an extractor protocol that change the numbers (not, e.g., the weights file's location)."""
    return {k: protocol.get(k) for k in (keys.KEY_WEIGHTS, "random_init", "feature", keys.KEY_RESIZE, "input",
                                         "image_reading", "skip_errors")}


def cache_key(folder: str | Path, files: list[Path], protocol: dict) -> str:
    listing = []
    for f in files:
        try:
            st = f.stat()
        except OSError:  # a dangling link named like an image: reading reports it (or skips it)
            listing.append([f.name, None, None])
            continue
        listing.append([f.name, st.st_size, st.st_mtime_ns])
    payload = {"version": keys.STATS_FORMAT_VERSION, "folder": str(Path(folder).resolve()), "files": listing,
               "input_size": keys.INCEPTION_INPUT_SIZE, "protocol": protocol_fingerprint(protocol)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_path(folder: str | Path, files: list[Path], protocol: dict) -> Path:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(folder).resolve().name)[:40] or "root"
    return stats_cache_dir() / f"{name}-{cache_key(folder, files, protocol)[:24]}.npz"


def cached_stats(folder: str | Path, files: list[Path], protocol: dict, compute: Callable[[], FIDStats],
                 use_cache: bool = True, read: bool = True) -> tuple[FIDStats, str]:
    """``(stats, "hit" | "miss" | "written" | "off")``: the cached statistics of the folder, or computed ones
    (then stored). ``read=False`` always computes (and refreshes the entry): ``"written"``."""
    if not use_cache:
        return compute(), "off"
    path = cache_path(folder, files, protocol)
    if read and path.is_file():
        try:
            stats = load_npz(path)
            log.info("FID statistics of %s: cache hit (%s)", folder, path)
            return stats, "hit"
        except DataError as exc:  # a damaged cache entry is recomputed, not fatal
            log.warning("ignoring damaged cache entry: %s", exc)
    stats = compute()
    try:
        save_npz(stats, path)
        log.info("FID statistics of %s cached in %s", folder, path)
    except OSError as exc:
        log.warning("could not write the statistics cache %s (%s); continuing without it", path, exc)
        return stats, "off"
    return stats, "miss" if read else "written"

"""Fréchet Inception Distance: the distance, folder statistics, a torchmetrics ``Metric``, and folder-to-folder FID.

FID between N(mu1, S1) and N(mu2, S2) is ``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)``. The trace term is
computed from factors ``S1 = B1^T B1`` and ``S2 = B2^T B2`` (pivoted Cholesky, r_i x d): the eigenvalues of
``S1 S2`` are the squared singular values of ``B1 B2^T`` (r1 x r2), so ``tr sqrt(S1 S2)`` is the sum of those
singular values. No complex square root is taken (torch-fidelity and torchmetrics take ``eigvals(S1 S2)`` of a
non-symmetric product and drop imaginary parts), and no eigenvalue is squared and then rooted again, so small but
real eigenvalues keep their digits and nothing has to be cut off by a threshold. With N samples a covariance has
rank at most N - 1; when the sample count is known the factor keeps at most that many rows (the rest is rounding
noise), which makes the term exact for the rank-deficient covariances of fewer than 2049 images. The result is
clipped at 0: FID is a squared distance and is never reported negative.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import svdvals
from scipy.linalg.lapack import dpstrf
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance as _TMFrechetInceptionDistance

from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import METRICS, ReadPolicy
from genkit.metrics import keys, protocols
from genkit.metrics.folders import default_num_workers, extract_features, folder_files
from genkit.metrics.inception import InceptionFeatures, images_or_features, resolve_device
from genkit.metrics.stats_cache import (FIDStats, RunningStats, cached_stats, load_npz, stats_from_features,
                                       stats_from_sums)

log = logging.getLogger(__name__)


def _as_numpy64(a) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def covariance_factor(sigma, max_rank: int | None = None) -> np.ndarray:
    """``B`` (r x d) with ``B^T B = sigma`` for a symmetric positive semi-definite ``sigma`` (pivoted Cholesky).

    The rank r is LAPACK's (pivots above d * eps * max(diag)), and at most ``max_rank`` (the covariance of N
    samples has rank at most N - 1; pivots beyond it are rounding noise).
    """
    s = _as_numpy64(sigma)
    s = 0.5 * (s + s.T)
    factor, piv, rank, info = dpstrf(s, lower=0)  # P^T s P = U^T U
    if info < 0:
        raise ValueError(f"pivoted Cholesky failed (LAPACK dpstrf info={info})")
    if max_rank is not None:
        rank = max(0, min(rank, int(max_rank)))
    u = np.triu(factor[:rank])
    b = np.empty_like(u)
    b[:, piv - 1] = u  # b = U P^T, so s = b^T b
    return b


def trace_sqrt_product(sigma1, sigma2, max_rank1: int | None = None, max_rank2: int | None = None) -> float:
    """``tr sqrt(sigma1 @ sigma2)`` for covariance matrices: the sum of the singular values of ``B1 B2^T``.

    ``B1``, ``B2`` are :func:`covariance_factor` s (``max_rank*``: at most N - 1 for N samples). Exact to
    rounding for rank-deficient covariances, and fast when the ranks are small (few samples).
    """
    b1 = covariance_factor(sigma1, max_rank1)
    b2 = covariance_factor(sigma2, max_rank2)
    if b1.shape[0] == 0 or b2.shape[0] == 0:
        return 0.0
    return float(svdvals(b1 @ b2.T, check_finite=False).sum())


def sample_rank_bound(num_samples: int | None, dim: int) -> int | None:
    """The largest rank a covariance of ``num_samples`` samples in ``dim`` dimensions can have (None: unknown)."""
    return None if num_samples is None else max(0, min(int(num_samples) - 1, dim))


def frechet_distance(mu1, sigma1, mu2, sigma2, num_samples1: int | None = None,
                     num_samples2: int | None = None) -> float:
    """Fréchet distance between two Gaussians (float64, never negative).

    ``num_samples*`` (if known) bound the covariances' ranks, which keeps the trace term exact with few samples.
    """
    mu1, mu2 = _as_numpy64(mu1), _as_numpy64(mu2)
    sigma1, sigma2 = _as_numpy64(sigma1), _as_numpy64(sigma2)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be vectors of the same length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    tr_sqrt = trace_sqrt_product(sigma1, sigma2, sample_rank_bound(num_samples1, d),
                                 sample_rank_bound(num_samples2, d))
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)
    return max(value, 0.0)


class SmallSampleWarning(UserWarning):
    """FID from fewer samples than feature dimensions + 1: the covariance is rank-deficient."""


def small_sample_note(num_samples: int | None, dim: int, what: str) -> str | None:
    """A one-line note when ``num_samples`` cannot give a full-rank ``dim`` x ``dim`` covariance, else None."""
    if num_samples is None or num_samples > dim:
        return None
    return (f"{what}: {num_samples} samples give a covariance of rank at most {num_samples - 1} < {dim} "
            f"(rank-deficient); FID is computed exactly for it, but is biased upwards at small N and comparable "
            f"only between results with the same N (use at least {dim + 1}, ideally 10000+)")


def small_sample_notes(stats: list[FIDStats], names: list[str]) -> list[str]:
    """The :func:`small_sample_note` s of several inputs (empty when every N is large enough or unknown)."""
    notes = (small_sample_note(st.num_samples, st.dim, name) for st, name in zip(stats, names))
    return [n for n in notes if n]


def fid_from_stats(stats1: FIDStats, stats2: FIDStats, names: tuple[str, str] = ("FID input 1", "FID input 2"),
                   protocol: str | None = None) -> float:
    """FID between two sets of statistics with their protocol's matrix square root (``protocol``: override;
    default: the one the statistics record, else torch-fidelity's exact trace); warns
    (:class:`SmallSampleWarning`) for a side with N <= dim. Statistics of two protocols are refused."""
    if stats1.dim != stats2.dim:
        raise DataError(None, f"FID statistics of different dimensions: {stats1.dim} and {stats2.dim}")
    protocols.check_same_protocol(stats1.protocol, stats2.protocol, names[0], names[1])
    name = protocol or protocols.protocol_of(stats1.protocol) or protocols.protocol_of(stats2.protocol)
    for note in small_sample_notes([stats1, stats2], list(names)):
        warnings.warn(note, SmallSampleWarning, stacklevel=2)
    return protocols.frechet_distance_for(name, stats1.mu, stats1.sigma, stats2.mu, stats2.sigma,
                                          stats1.num_samples, stats2.num_samples)


def record_small_samples(protocol: dict, stats: list[FIDStats], records: list[dict]) -> None:
    """Write into a result's protocol how the trace was computed, which inputs are rank-deficient, and why."""
    name = protocols.protocol_of(protocol) or protocols.DEFAULT
    protocol[keys.KEY_TRACE_SQRT] = (keys.TRACE_SQRT_METHOD if name == protocols.DEFAULT
                                     else protocols.get_protocol(name).distance)
    for st, rec in zip(stats, records):
        rec[keys.KEY_RANK_DEFICIENT] = st.num_samples is not None and st.num_samples <= st.dim
    notes = small_sample_notes(stats, [str(rec.get("path")) for rec in records])
    if notes:
        protocol.setdefault(keys.KEY_WARNINGS, []).extend(notes)


# ----------------------------------------------------------------------------------------------- Metric


class FrechetInceptionDistance(_TMFrechetInceptionDistance):
    """FID as a torchmetrics ``Metric`` (validation loops, DDP).

    States are torchmetrics' own: float64 ``*_features_sum``, ``*_features_cov_sum`` (sum of outer products) and
    ``*_features_num_samples``, all reduced with ``"sum"`` across processes, so memory is constant in the number
    of images and per-process states merge exactly. Differences from torchmetrics' class: the feature extractor
    is genkit's (torch-fidelity's Inception with the TF1-exact resize, registry weights, offline policy), the
    distance is :func:`frechet_distance` (safe square root, never negative), and reference statistics can be
    fixed (``reference=`` an ``.npz`` path or :class:`FIDStats`): then only fake images are updated and synced.

    ``update(images, real)`` takes uint8 images (N, 3, H, W); with ``value_range=(lo, hi)`` float images in that
    range are accepted and rounded to uint8 exactly as saving them as PNG would.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, weights_path: str | Path | None = None, allow_random: bool = False,
                 reference: str | Path | FIDStats | None = None, value_range: tuple[float, float] | None = None,
                 feature: InceptionFeatures | torch.nn.Module | None = None, reset_real_features: bool = True,
                 seed: int = 0, protocol: str | None = None, **kwargs: Any) -> None:
        if feature is None:
            feature = protocols.build_extractor(protocol, weights_path, allow_random, seed=seed)
        if not isinstance(getattr(feature, "num_features", None), int):
            raise ConfigError("a custom FID feature module needs an int `num_features` attribute")
        super().__init__(feature=feature, reset_real_features=reset_real_features, normalize=False, **kwargs)
        self.value_range = value_range
        self.protocol = dict(getattr(feature, "protocol", {}))
        if isinstance(reference, (str, Path)):
            reference = load_npz(reference, expected_dim=feature.num_features)
        if reference is not None and reference.dim != feature.num_features:
            raise DataError(None, f"reference statistics have dimension {reference.dim}, the features "
                            f"{feature.num_features}")
        if reference is not None:
            protocols.check_same_protocol(reference.protocol, self.protocol, "the reference statistics",
                                          "this metric's features")
        self.reference = reference

    def update(self, imgs: Tensor | None, real: bool, features: Tensor | None = None) -> None:
        """Add images (or, with ``features=``, already extracted features (N, D)) to the real or fake side."""
        if real and self.reference is not None:
            raise ConfigError("this FID metric has fixed reference statistics; update it with fake images only")
        features = images_or_features(self.inception, imgs, features, self.value_range)
        prefix = "real" if real else "fake"
        total = getattr(self, f"{prefix}_features_sum")
        f = features.detach().to(total.device, torch.float64)
        if f.dim() == 1:
            f = f.unsqueeze(0)
        if f.dim() != 2 or f.shape[1] != total.shape[0]:
            raise ValueError(f"expected features (N, {total.shape[0]}), got {tuple(f.shape)}")
        total.add_(f.sum(dim=0))
        getattr(self, f"{prefix}_features_cov_sum").add_(f.T @ f)
        getattr(self, f"{prefix}_features_num_samples").add_(f.shape[0])

    def update_features(self, features: Tensor, real: bool) -> None:
        """Add already extracted features (N, D)."""
        self.update(None, real, features=features)

    def stats(self, real: bool) -> FIDStats:
        """The accumulated statistics of one side (after sync, in DDP)."""
        if real and self.reference is not None:
            return self.reference
        prefix = "real" if real else "fake"
        n = int(getattr(self, f"{prefix}_features_num_samples"))
        mu, sigma = stats_from_sums(getattr(self, f"{prefix}_features_sum"),
                                    getattr(self, f"{prefix}_features_cov_sum"), n, source=f"{prefix} images")
        return FIDStats(mu.cpu().numpy(), sigma.cpu().numpy(), n, dict(self.protocol))

    def compute(self) -> Tensor:  # noqa: D102
        value = fid_from_stats(self.stats(real=True), self.stats(real=False))
        return torch.tensor(value, dtype=torch.float64)


# -------------------------------------------------------------------------------------- folders and files


def _check_protocols(p1: dict, p2: dict, what1: str, what2: str) -> None:
    protocols.check_same_protocol(p1, p2, what1, what2)
    w1, w2 = p1.get(keys.KEY_WEIGHTS), p2.get(keys.KEY_WEIGHTS)
    r1, r2 = p1.get("random_init"), p2.get("random_init")
    if w1 and w2 and (w1 != w2 or r1 != r2):
        raise ConfigError(f"{what1} and {what2} were computed with different Inception weights "
                          f"({w1[:16]}{' ' + r1 if r1 else ''} vs {w2[:16]}{' ' + r2 if r2 else ''}); "
                          "FID between them is meaningless")


def folder_stats(folder: str | Path, extractor: InceptionFeatures, batch_size: int = 50,
                 num_workers: int | None = None, use_cache: bool = True, reading: ReadPolicy | None = None,
                 progress: bool = False, features_out: list[Tensor] | None = None,
                 skip_errors: bool = False) -> tuple[FIDStats, dict]:
    """FID statistics of an image folder, read from / written to the statistics cache.

    Returns ``(stats, record)``; the record holds the sample count, image sizes, conversions, skipped files and
    whether the cache was hit. With ``features_out`` (a list), the images are always read and their features
    appended to it (KID needs them); the statistics of that same pass are written to the cache. ``reading``:
    how files are decoded (default :data:`genkit.core.reading.METRICS`, as torch-fidelity); it is part of the protocol and
    of the cache key, as is ``skip_errors``.

    With N <= D (2048) images the statistics are computed from all features at once (centred, float64) and the
    cache stores those features; above, from float64 running sums (memory constant in N). Either way a cached
    entry gives exactly the statistics a fresh pass gives.
    """
    files = folder_files(folder)
    protocol = reading_protocol(extractor.protocol, reading, skip_errors)
    workers = default_num_workers(extractor.device) if num_workers is None else num_workers

    def compute() -> tuple[FIDStats, Tensor | None]:
        acc = RunningStats(extractor.num_features, device=extractor.device)
        kept: list[Tensor] | None = []  # all features while there are at most D of them

        def take(f: Tensor) -> None:
            nonlocal kept
            acc.update(f)
            if features_out is None and kept is None:
                return
            f_cpu = f.detach().cpu()
            if features_out is not None:
                features_out.append(f_cpu)
            if kept is not None:
                kept.append(f_cpu)
                if acc.count > extractor.num_features:
                    kept = None

        scan = extract_features(files, extractor, take, batch_size, workers, reading, progress,
                                desc=str(folder), skip_errors=skip_errors)
        if scan.num_images < 2:
            raise DataError(folder, f"FID/KID need at least 2 images, the folder has {scan.num_images}")
        features = torch.cat(kept) if kept is not None else None
        stats = (stats_from_features(features, protocol, source=folder) if features is not None
                 else acc.stats(protocol, source=folder))
        stats.protocol.update(scan.record())
        return stats, features

    stats, cache_state = cached_stats(folder, files, protocol, compute, use_cache, read=features_out is None)
    record = {"path": str(folder), "kind": "folder", "stats_cache": cache_state,
              keys.KEY_NUM_SAMPLES: stats.num_samples,
              keys.KEY_IMAGE_SIZES: stats.protocol.get(keys.KEY_IMAGE_SIZES),
              keys.KEY_MIXED_SIZES: stats.protocol.get(keys.KEY_MIXED_SIZES)}
    for extra in ("conversions", "skipped"):
        if stats.protocol.get(extra):
            record[extra] = stats.protocol[extra]
    return stats, record


def reading_protocol(protocol: dict, reading: ReadPolicy | None, skip_errors: bool = False) -> dict:
    """``protocol`` plus how the images were read (``image_reading``) and, when set, ``skip_errors``."""
    out = dict(protocol, image_reading=(reading or METRICS).record())
    if skip_errors:
        out["skip_errors"] = True
    return out


def save_folder_stats(folder: str | Path, out: str | Path, weights_path: str | Path | None = None,
                      allow_random: bool = False, batch_size: int = 50, device: str | None = None,
                      num_workers: int | None = None, use_cache: bool = True, reading: ReadPolicy | None = None,
                      progress: bool = False, extractor: InceptionFeatures | None = None,
                      skip_errors: bool = False, protocol: str | None = None) -> dict:
    """Compute (or fetch from the cache) a folder's statistics and write them as a pytorch-fid ``.npz``
    (``protocol``: torch-fidelity (default), clean-fid, ..., recorded in the file)."""
    from genkit.metrics.stats_cache import save_npz

    if extractor is None:
        extractor = protocols.build_extractor(protocol, weights_path, allow_random, device=resolve_device(device))
    stats, record = folder_stats(folder, extractor, batch_size, num_workers, use_cache, reading, progress,
                                 skip_errors=skip_errors)
    save_npz(stats, out)
    protocol = dict(reading_protocol(extractor.protocol, reading, skip_errors), input1=record)
    record_small_samples(protocol, [stats], [record])
    return {"output": str(out), keys.KEY_PROTOCOL: protocol}


def is_stats_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".npz"


def _npz_input(p: Path) -> tuple[FIDStats, dict]:
    """The statistics of an ``.npz`` input of :func:`fid_between` and its record."""
    s = load_npz(p)
    if s.num_samples is not None and s.num_samples < 2:
        raise DataError(p, f"statistics of {s.num_samples} sample(s); FID needs at least 2")
    return s, {"path": str(p), "kind": "npz", keys.KEY_NUM_SAMPLES: s.num_samples,
               keys.KEY_IMAGE_SIZES: s.protocol.get(keys.KEY_IMAGE_SIZES),
               keys.KEY_WEIGHTS: s.protocol.get(keys.KEY_WEIGHTS, "unknown (not written by genkit)"),
               keys.KEY_FID_PROTOCOL: protocols.protocol_of(s.protocol) or "unknown"}


def fid_between(input1: str | Path, input2: str | Path, weights_path: str | Path | None = None,
                allow_random: bool = False, batch_size: int = 50, device: str | None = None,
                num_workers: int | None = None, use_cache: bool = True, reading: ReadPolicy | None = None,
                progress: bool = False, extractor: InceptionFeatures | None = None, skip_errors: bool = False,
                protocol: str | None = None) -> dict:
    """FID between two inputs, each an image folder or an ``.npz`` of statistics.

    ``protocol``: torch-fidelity (default for folders), clean-fid, clean-fid-legacy-tf, clean-fid-legacy-pytorch
    or pytorch-fid (:mod:`genkit.metrics.protocols`); two ``.npz`` files use the protocol they record.
    Returns ``{"fid": value, "protocol": {...}}``; the protocol records the weights (sha256 or RANDOM), the resize
    mode, and per input the sample count, image sizes and statistics-cache use.
    """
    inputs = [Path(input1), Path(input2)]
    if protocol is not None:
        protocols.get_protocol(protocol)  # an unknown name fails before any work
    loaded = {i: _npz_input(p) for i, p in enumerate(inputs) if is_stats_file(p)}  # a bad file fails before any net
    if len(loaded) < len(inputs) and extractor is None:
        extractor = protocols.build_extractor(protocol, weights_path, allow_random, device=resolve_device(device))
    stats: list[FIDStats] = []
    records: list[dict] = []
    for i, p in enumerate(inputs):
        s, rec = loaded[i] if i in loaded else folder_stats(p, extractor, batch_size, num_workers, use_cache, reading,
                                                            progress, skip_errors=skip_errors)
        stats.append(s)
        records.append(rec)
    net_protocol = reading_protocol(extractor.protocol, reading, skip_errors) if extractor is not None else {}
    asked = {keys.KEY_FID_PROTOCOL: protocol} if protocol is not None else {}
    for s, p in zip(stats, inputs):
        _check_protocols(s.protocol, net_protocol or asked, str(p), "the Inception in use" if net_protocol
                         else f"--protocol {protocol}")
    _check_protocols(stats[0].protocol, stats[1].protocol, str(inputs[0]), str(inputs[1]))
    name = (protocols.protocol_of(net_protocol or asked) or protocols.protocol_of(stats[0].protocol)
            or protocols.protocol_of(stats[1].protocol) or protocols.DEFAULT)
    result_protocol = net_protocol or {keys.KEY_FID_PROTOCOL: name,
                                       keys.KEY_WEIGHTS: stats[0].protocol.get(keys.KEY_WEIGHTS, "unknown"),
                                       keys.KEY_RESIZE: stats[0].protocol.get(keys.KEY_RESIZE, "unknown")}
    result_protocol.update(metric="FID", input1=records[0], input2=records[1])
    record_small_samples(result_protocol, stats, records)
    value = fid_from_stats(stats[0], stats[1], (str(inputs[0]), str(inputs[1])), protocol=name)
    return {keys.KEY_FID: value, keys.KEY_PROTOCOL: result_protocol}


def folder_features(folder: str | Path, extractor: InceptionFeatures, batch_size: int = 50,
                    num_workers: int | None = None, reading: ReadPolicy | None = None, progress: bool = False,
                    use_cache: bool = True, skip_errors: bool = False) -> tuple[Tensor, FIDStats, dict]:
    """All features of a folder (N, 2048) float32 on the CPU (KID needs them), with the folder's FID statistics
    from the same pass (also written to the statistics cache) and its record."""
    chunks: list[Tensor] = []
    stats, record = folder_stats(folder, extractor, batch_size, num_workers, use_cache, reading, progress,
                                 features_out=chunks, skip_errors=skip_errors)
    return torch.cat(chunks), stats, record


__all__ = ("FrechetInceptionDistance", "SmallSampleWarning", "covariance_factor", "fid_between", "fid_from_stats",
           "folder_features", "folder_stats", "frechet_distance", "save_folder_stats", "small_sample_note",
           "trace_sqrt_product")

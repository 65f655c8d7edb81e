"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets.

The estimator and the subset sampling are torch-fidelity's own (``kid_features_to_metric``: subsets drawn with
``numpy.random.RandomState(seed).choice(n, subset_size, replace=False)``), so genkit's numbers equal
torch-fidelity's on the same features; genkit feeds it float64 features (torch-fidelity's own path uses float32).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import ReadPolicy
from genkit.metrics import keys, protocols
from genkit.metrics.inception import InceptionFeatures, images_or_features, resolve_device

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000
DEFAULT_SEED = 2020  # torch-fidelity's default rng_seed


def _check_kid_args(n1: int, n2: int, subsets: int, subset_size: int, what1: str = "input 1",
                    what2: str = "input 2") -> None:
    if subsets < 1 or subset_size < 2:
        raise ConfigError(f"KID needs subsets >= 1 and subset_size >= 2 (got {subsets}, {subset_size})")
    for n, what in ((n1, what1), (n2, what2)):
        if n < 2:
            raise DataError(None, f"{what}: KID needs at least 2 images, got {n}")
        if n < subset_size:
            raise ConfigError(f"{what} has {n} images, fewer than the KID subset size {subset_size}; "
                              f"lower it (--kid-subset-size / subset_size={n} or less)")


def kid_from_features(features1: Tensor, features2: Tensor, subsets: int = DEFAULT_SUBSETS,
                      subset_size: int = DEFAULT_SUBSET_SIZE, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0, seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """``(mean, std)`` of the unbiased MMD^2 over ``subsets`` random subsets of ``subset_size`` samples."""
    f1 = features1.detach().cpu().double()
    f2 = features2.detach().cpu().double()
    if f1.dim() != 2 or f2.dim() != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"expected feature matrices (N, D) of the same D, got {tuple(f1.shape)}, {tuple(f2.shape)}")
    _check_kid_args(len(f1), len(f2), subsets, subset_size)
    with contextlib.redirect_stdout(io.StringIO()):
        out = kid_features_to_metric(
            f1, f2, kid_subsets=subsets, kid_subset_size=subset_size, kid_kernel="poly",
            kid_kernel_poly_degree=degree, kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0,
            rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def _num_rows(state: Tensor | list[Tensor]) -> int:
    if isinstance(state, Tensor):
        return int(state.shape[0]) if state.dim() else 0
    return sum(int(t.shape[0]) for t in state)


class KernelInceptionDistance(Metric):
    """KID as a torchmetrics ``Metric``: features are kept (``"cat"`` states, gathered across processes).

    ``compute()`` returns ``(mean, std)``. The subset sampling follows torch-fidelity and depends on the order of
    the features (ranks are gathered in rank order; ``merge_state`` puts the incoming state first).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, weights_path: str | Path | None = None, allow_random: bool = False,
                 subsets: int = DEFAULT_SUBSETS, subset_size: int = DEFAULT_SUBSET_SIZE, degree: int = 3,
                 gamma: float | None = None, coef0: float = 1.0, seed: int = DEFAULT_SEED,
                 value_range: tuple[float, float] | None = None, reset_real_features: bool = True,
                 feature: InceptionFeatures | torch.nn.Module | None = None, init_seed: int = 0,
                 protocol: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if subsets < 1 or subset_size < 2:
            raise ConfigError(f"KID needs subsets >= 1 and subset_size >= 2 (got {subsets}, {subset_size})")
        self.inception = feature if feature is not None else protocols.build_extractor(
            protocol, weights_path, allow_random, seed=init_seed)
        self.protocol = dict(getattr(self.inception, "protocol", {}))
        self.subsets, self.subset_size = subsets, subset_size
        self.degree, self.gamma, self.coef0, self.seed = degree, gamma, coef0, seed
        self.value_range = value_range
        self.reset_real_features = reset_real_features
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, imgs: Tensor | None, real: bool, features: Tensor | None = None) -> None:
        """Add images (or, with ``features=``, already extracted features (N, D)) to the real or fake side."""
        features = images_or_features(self.inception, imgs, features, self.value_range)
        (self.real_features if real else self.fake_features).append(features.detach().float())

    def compute(self) -> tuple[Tensor, Tensor]:  # noqa: D102
        # a list of batches before syncing, one gathered tensor after (DDP): count rows, never test truth
        if _num_rows(self.real_features) == 0 or _num_rows(self.fake_features) == 0:
            raise DataError(None, "KID needs real and fake images; one side has none")
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        if protocols.uses_clean_fid_kid(protocols.protocol_of(self.protocol)):
            mean = protocols.clean_fid_kid(real.cpu().numpy(), fake.cpu().numpy(), self.subsets, self.subset_size,
                                           self.seed)
            return torch.tensor(mean, dtype=torch.float64), torch.tensor(float("nan"), dtype=torch.float64)
        mean, std = kid_from_features(real, fake, self.subsets, self.subset_size, self.degree, self.gamma,
                                      self.coef0, self.seed)
        return torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)

    def reset(self) -> None:  # noqa: D102
        if not self.reset_real_features:
            value = self._defaults.pop("real_features")
            try:
                super().reset()
            finally:
                self._defaults["real_features"] = value
        else:
            super().reset()


def kid_between(folder1: str | Path, folder2: str | Path, weights_path: str | Path | None = None,
                allow_random: bool = False, subsets: int = DEFAULT_SUBSETS, subset_size: int = DEFAULT_SUBSET_SIZE,
                degree: int = 3, gamma: float | None = None, coef0: float = 1.0, seed: int = DEFAULT_SEED,
                batch_size: int = 50, device: str | None = None, num_workers: int | None = None,
                reading: ReadPolicy | None = None, progress: bool = False,
                extractor: InceptionFeatures | None = None, with_fid: bool = False, use_cache: bool = True,
                skip_errors: bool = False, protocol: str | None = None) -> dict:
    """KID between two image folders: ``{"kid_mean", "kid_std", "protocol"}``.

    ``protocol`` picks the features (:mod:`genkit.metrics.protocols`); clean-fid protocols use clean-fid's own
    estimator (``kernel_distance``: subsets of min(N1, N2, ``subset_size``), drawn from NumPy's global generator
    seeded with ``seed``; mean only, ``kid_std`` is None), the others torch-fidelity's.

    The same pass over the images also gives each folder's FID statistics, which are written to the statistics
    cache (unless ``use_cache=False``); ``with_fid`` adds the FID between the folders to the result.
    """
    from genkit.metrics.fid import fid_from_stats, folder_features, is_stats_file, reading_protocol, record_small_samples

    for p in (folder1, folder2):
        if is_stats_file(p):
            raise ConfigError(f"{p}: KID needs images (it uses the features themselves, not mean/covariance); "
                              "give a folder")
    from genkit.metrics.folders import folder_files

    # fail fast, before any forward pass: every listed file is one image (or a DataError naming it)
    _check_kid_args(len(folder_files(folder1)), len(folder_files(folder2)), subsets, subset_size, str(folder1),
                    str(folder2))
    if extractor is None:
        extractor = protocols.build_extractor(protocol, weights_path, allow_random, device=resolve_device(device))
    f1, stats1, rec1 = folder_features(folder1, extractor, batch_size, num_workers, reading, progress,
                                       use_cache, skip_errors)
    f2, stats2, rec2 = folder_features(folder2, extractor, batch_size, num_workers, reading, progress,
                                       use_cache, skip_errors)
    _check_kid_args(len(f1), len(f2), subsets, subset_size, str(folder1), str(folder2))
    name = protocols.protocol_of(extractor.protocol) or protocols.DEFAULT
    if protocols.uses_clean_fid_kid(name):
        mean, std = protocols.clean_fid_kid(f1.numpy(), f2.numpy(), subsets, subset_size, seed), None
        estimator = "unbiased MMD^2 (clean-fid kernel_distance, cubic kernel, gamma 1/D, coef0 1)"
    else:
        mean, std = kid_from_features(f1, f2, subsets, subset_size, degree, gamma, coef0, seed)
        estimator = "unbiased MMD^2 (torch-fidelity)"
    protocol = dict(reading_protocol(extractor.protocol, reading, skip_errors), metric="KID",
                    kid={"subsets": subsets, "subset_size": subset_size, "kernel": "polynomial",
                         "degree": degree, "gamma": gamma if gamma is not None else "1/D", "coef0": coef0,
                         "seed": seed, "estimator": estimator},
                    input1=rec1, input2=rec2)
    result = {keys.KEY_KID_MEAN: mean, keys.KEY_KID_STD: std, keys.KEY_PROTOCOL: protocol}
    if with_fid:
        record_small_samples(protocol, [stats1, stats2], [rec1, rec2])
        result[keys.KEY_FID] = fid_from_stats(stats1, stats2, (str(folder1), str(folder2)))
        protocol["metric"] = "KID+FID"
    return result

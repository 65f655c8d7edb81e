"""Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020) of feature sets.

Definitions as the reference implementation (the ``prdc`` package, ``compute_prdc(real, fake, nearest_k)``): each
sample's k-NN radius is the distance to its k-th nearest neighbour in its own set (itself excluded), and

* **precision**: the fraction of *fake* samples inside the k-NN ball of at least one *real* sample (quality);
* **recall**: the fraction of *real* samples inside the k-NN ball of at least one *fake* sample (diversity);
* **density**: the mean over fake samples of (number of real balls containing it) / k (can exceed 1);
* **coverage**: the fraction of *real* samples whose ball contains at least one fake sample.

The order matters: the first argument is always the real (reference) set, the second the generated one; swapping
them swaps precision and recall (and changes density and coverage). Distances are computed in float64 in chunks,
so memory grows with ``chunk_size x N`` instead of the N x N matrices ``prdc`` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from genkit.core.errors import ConfigError, DataError
from genkit.metrics import keys

DEFAULT_K = 3
NAMES = ("precision", "recall", "density", "coverage")


def _as64(x) -> Tensor:
    t = x.detach().cpu() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.to(torch.float64)


def knn_radii(features: Tensor, k: int, chunk_size: int = 2048) -> Tensor:
    """Distance of every sample to its k-th nearest neighbour in the same set (itself excluded)."""
    out = []
    for start in range(0, len(features), chunk_size):
        d = torch.cdist(features[start:start + chunk_size], features)
        out.append(torch.kthvalue(d, k + 1, dim=1).values)  # the smallest is the sample itself (0)
    return torch.cat(out)


def precision_recall_density_coverage(real, fake, k: int = DEFAULT_K, chunk_size: int = 2048) -> dict[str, float]:
    """The four numbers for ``real`` (N, D) and ``fake`` (M, D) features (real first: see the module docstring)."""
    r, f = _as64(real), _as64(fake)
    if r.dim() != 2 or f.dim() != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"expected feature matrices (N, D) of the same D, got {tuple(r.shape)}, {tuple(f.shape)}")
    if k < 1 or len(r) <= k or len(f) <= k:
        raise ConfigError(f"precision/recall with k={k} need more than k samples on each side "
                          f"(got {len(r)} real, {len(f)} fake)")
    real_radii, fake_radii = knn_radii(r, k, chunk_size), knn_radii(f, k, chunk_size)
    fake_in_real = torch.zeros(len(f), dtype=torch.bool)
    fake_ball_count = torch.zeros(len(f), dtype=torch.float64)
    real_in_fake = torch.zeros(len(r), dtype=torch.bool)
    real_covered = torch.zeros(len(r), dtype=torch.bool)
    for start in range(0, len(r), chunk_size):
        d = torch.cdist(r[start:start + chunk_size], f)  # (chunk, M)
        inside_real = d < real_radii[start:start + chunk_size, None]
        fake_in_real |= inside_real.any(dim=0)
        fake_ball_count += inside_real.sum(dim=0)
        real_in_fake[start:start + chunk_size] = (d < fake_radii[None, :]).any(dim=1)
        real_covered[start:start + chunk_size] = d.min(dim=1).values < real_radii[start:start + chunk_size]
    return {"precision": float(fake_in_real.double().mean()), "recall": float(real_in_fake.double().mean()),
            "density": float(fake_ball_count.mean() / k), "coverage": float(real_covered.double().mean())}


class PrecisionRecallDensityCoverage(Metric):
    """The four numbers as a torchmetrics ``Metric`` (features kept, gathered across processes).

    ``update(features, real)`` takes features (N, D), or images when a ``feature`` extractor is given.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, k: int = DEFAULT_K, feature: torch.nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.k, self.feature = k, feature
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, x: Tensor, real: bool) -> None:  # noqa: D102
        f = self.feature(x) if self.feature is not None else x
        (self.real_features if real else self.fake_features).append(f.detach().float())

    def compute(self) -> dict[str, Tensor]:  # noqa: D102
        if not self.real_features or not self.fake_features:
            raise DataError(None, "precision/recall need real and fake samples; one side has none")
        out = precision_recall_density_coverage(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features),
                                                self.k)
        return {name: torch.tensor(v, dtype=torch.float64) for name, v in out.items()}


def prdc_between(real: str | Path, fake: str | Path, k: int = DEFAULT_K, protocol: str | None = None,
                 weights_path=None, allow_random: bool = False, batch_size: int = 50, device: str | None = None,
                 num_workers: int | None = None, reading=None, progress: bool = False, use_cache: bool = True,
                 skip_errors: bool = False, extractor=None) -> dict:
    """Precision, recall, density and coverage between a folder of real and a folder of generated images, on the
    Inception features of ``protocol`` (the FID statistics of the same pass go to the cache)."""
    from genkit.metrics import protocols
    from genkit.metrics.fid import folder_features, reading_protocol
    from genkit.metrics.inception import resolve_device

    if extractor is None:
        extractor = protocols.build_extractor(protocol, weights_path, allow_random, device=resolve_device(device))
    f_real, _, rec_real = folder_features(real, extractor, batch_size, num_workers, reading, progress, use_cache,
                                          skip_errors)
    f_fake, _, rec_fake = folder_features(fake, extractor, batch_size, num_workers, reading, progress, use_cache,
                                          skip_errors)
    result: dict = precision_recall_density_coverage(f_real, f_fake, k)
    result[keys.KEY_PROTOCOL] = dict(reading_protocol(extractor.protocol, reading, skip_errors),
                                     metric=f"precision/recall (Kynkaanniemi 2019), density/coverage (Naeem 2020), "
                                            f"k={k}; input1 = real, input2 = fake",
                                     input1=dict(rec_real, role="real"), input2=dict(rec_fake, role="fake"))
    return result

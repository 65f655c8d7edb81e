"""Every torchmetrics ``Metric`` genkit ships, in a real 2-process ``gloo`` group: the synced value of each equals
the single-process value on the same data.

Two CPU processes (``torch.multiprocessing.spawn``) each update every metric with their own, unevenly sized
share of the data; ``compute()`` then syncs the states (sums are all-reduced, KID's features all-gathered in rank
order). Rank 0's share comes first in the single-process run, so even KID's order-dependent subset sampling
sees the same feature matrix. One process group serves all metrics; the networks are tiny and randomly
initialised (seeded, so every process builds the same ones).
"""

from __future__ import annotations

import datetime
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2


class TinyFeatures(nn.Module):
    """A small random uint8-image -> feature network standing in for the Inception (FID / KID mechanics)."""

    num_features = 12

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, self.num_features)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        h = torch.relu(self.conv(x.float() / 255.0))
        return self.fc(h.mean(dim=(2, 3)))


def _data() -> dict:
    """Each metric's inputs, as a list of per-rank shares (uneven sizes)."""
    g = torch.Generator().manual_seed(123)

    def u8(n, size=16):
        return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)

    def sym(*shape):
        return torch.rand(*shape, generator=g) * 2 - 1

    def unit(*shape):
        return torch.rand(*shape, generator=g)

    return {
        "real": [u8(3), u8(5)], "fake": [u8(4), u8(2)],
        "lpips": [(sym(2, 3, 32, 32), sym(2, 3, 32, 32)), (sym(3, 3, 32, 32), sym(3, 3, 32, 32))],
        "diversity": [sym(1, 3, 3, 32, 32), sym(2, 3, 3, 32, 32)],
        "mask": [(sym(2, 3, 16, 16), torch.randint(0, 6, (2, 16, 16), generator=g)),
                 (sym(1, 3, 16, 16), torch.randint(0, 6, (1, 16, 16), generator=g))],
        "style": [(unit(1, 3, 32, 32), unit(1, 3, 32, 32), unit(1, 3, 32, 32)),
                  (unit(2, 3, 32, 32), unit(2, 3, 32, 32), unit(1, 3, 32, 32))],
    }


def _build() -> dict:
    from genkit.metrics.fid import FrechetInceptionDistance
    from genkit.metrics.kid import KernelInceptionDistance
    from genkit.metrics.lpips import LPIPSDiversity, LPIPSMetric, build_lpips
    from genkit.metrics.mask_consistency import MaskConsistency
    from genkit.metrics.stats_cache import stats_from_features
    from genkit.metrics.style import StyleTransferMetrics
    from genkit.models.parsing import ParserNet
    from genkit.nn.vgg import STYLE_TAPS, VGG19Encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # RANDOM weights, on purpose
        lpips_model = build_lpips("alex", allow_random=True, seed=1)
        torch.manual_seed(2)
        encoder = VGG19Encoder(taps=STYLE_TAPS, weights="random")
    torch.manual_seed(3)
    parser = ParserNet(6, base_channels=4, depth=2)
    feature = TinyFeatures(seed=4)
    reference = stats_from_features(torch.randn(20, TinyFeatures.num_features,
                                                generator=torch.Generator().manual_seed(5)))
    return {
        "fid": FrechetInceptionDistance(feature=feature),
        "fid_reference": FrechetInceptionDistance(feature=feature, reference=reference),
        "kid": KernelInceptionDistance(feature=feature, subsets=4, subset_size=5),
        "lpips": LPIPSMetric(model=lpips_model),
        "diversity": LPIPSDiversity(model=lpips_model),
        "mask": MaskConsistency(parser, input_range="symmetric"),
        "style": StyleTransferMetrics(encoder=encoder, lpips_model=lpips_model),
    }


def _values(out) -> list[float]:
    """A metric's result (tensor, tuple or dict of tensors) as a flat list of floats."""
    if isinstance(out, dict):
        return [v for k in sorted(out) for v in _values(out[k])]
    if isinstance(out, (tuple, list)):
        return [v for o in out for v in _values(o)]
    return [float(x) for x in torch.as_tensor(out).flatten()]


@torch.no_grad()
def _compute_all(shares: list[int]) -> dict[str, list[float]]:
    """Update every metric with the given shares of the data (in order) and compute it."""
    data, metrics = _data(), _build()
    for r in shares:
        metrics["fid"].update(data["real"][r], real=True)
        metrics["fid"].update(data["fake"][r], real=False)
        metrics["fid_reference"].update(data["fake"][r], real=False)
        metrics["kid"].update(data["real"][r], real=True)
        metrics["kid"].update(data["fake"][r], real=False)
        metrics["lpips"].update(*data["lpips"][r])
        metrics["diversity"].update(data["diversity"][r])
        metrics["mask"].update(*data["mask"][r])
        metrics["style"].update(*data["style"][r])
    return {name: _values(m.compute()) for name, m in metrics.items()}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=120))
    try:
        torch.save(_compute_all([rank]), Path(out_dir) / f"rank{rank}.pt")
        # both ranks done before either tears gloo down: a rank destroying the group while its peer still works
        # aborted the process once in CI ("terminate called without an active exception", SIGABRT)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_metric_synced_over_two_gloo_processes_equals_the_single_process_value(tmp_path, one_thread):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    single = _compute_all(list(range(WORLD)))
    assert set(single) == {"fid", "fid_reference", "kid", "lpips", "diversity", "mask", "style"}
    for rank in range(WORLD):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, expected in single.items():
            got = synced[name]
            assert len(got) == len(expected), name
            assert any(v != 0 and not math.isnan(v) for v in expected), f"{name}: degenerate test data"
            for g, e in zip(got, expected):
                assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, rel=1e-9, abs=1e-12), \
                    f"rank {rank}, {name}: synced {got} != single-process {expected}"

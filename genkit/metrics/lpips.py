"""LPIPS through the reference ``lpips`` package, offline-safe, plus LPIPS diversity.

The model is ``lpips.LPIPS(net=..., pnet_rand=True)``: the package's shipped linear heads (v0.1) on a trunk
whose weights genkit loads from its registry file (``lpips-alex`` = torchvision AlexNet, ``lpips-vgg`` =
torchvision VGG-16; the files torchvision itself downloads), or from ``weights_path``. Without the file the trunk
is randomly initialised only when ``allow_random`` is set (variance-preserving, seeded; marked RANDOM).

Inputs are RGB in [-1, 1] (the package's convention), shape (N, 3, H, W).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from genkit.core import weights as weights_registry
from genkit.core.errors import ConfigError, DataError, WeightsUnavailableError
from genkit.core.reading import ReadPolicy
from genkit.metrics import keys
from genkit.nn.init import variance_preserving_init

NETS = {"alex": "lpips-alex", "vgg": "lpips-vgg"}
# smallest image side each trunk accepts (AlexNet's 11x11/4 stem and two 3x3/2 pools; VGG-16's four 2x2 pools)
MIN_SIDE = {"alex": 31, "vgg": 16}


def _torchvision_features(net: str) -> nn.Sequential:
    """torchvision's ``alexnet().features`` / ``vgg16().features`` (same module indices as its state dicts)."""
    from torchvision.models import alexnet, vgg

    if net == "alex":
        return alexnet(weights=None).features
    return vgg.make_layers(vgg.cfgs["D"], batch_norm=False)  # vgg16().features without the 120M-parameter head


def _load_trunk(model, net: str, state: dict, source: Path) -> None:
    """Copy torchvision ``features.*`` weights into lpips's sliced trunk (``slice{k}.{index}.*``)."""
    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    tv = _torchvision_features(net)
    try:
        tv.load_state_dict(feats)
    except RuntimeError as exc:
        raise WeightsUnavailableError(
            f"{source}: not a torchvision {'AlexNet' if net == 'alex' else 'VGG-16'} state dict "
            f"({str(exc).splitlines()[0]} ...)") from None
    trunk_state = {}
    for slice_name, sl in model.net.named_children():
        for idx, _ in sl.named_children():
            for pname, value in tv[int(idx)].state_dict().items():
                trunk_state[f"{slice_name}.{idx}.{pname}"] = value
    model.net.load_state_dict(trunk_state, strict=True)


class LPIPSModel(nn.Module):
    """A frozen ``lpips.LPIPS`` with a :attr:`protocol` record. ``forward(x, y)`` -> (N,) distances."""

    def __init__(self, model, protocol: dict):
        super().__init__()
        self.model = model
        self.protocol = dict(protocol)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # noqa: D102 - always eval (dropout in the heads)
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        check_lpips_input(x, "x")
        check_lpips_input(y, "y")
        if x.shape != y.shape:
            raise ValueError(f"LPIPS compares images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        dev = self.device
        return self.model(x.to(dev), y.to(dev)).flatten()


def check_lpips_input(x: Tensor, name: str = "input", tol: float = 1e-3) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"LPIPS {name}: expected (N, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"LPIPS {name}: expected float images in [-1, 1], got {x.dtype}")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - tol or hi > 1 + tol:
        raise ValueError(f"LPIPS {name}: values in [{lo:.3g}, {hi:.3g}], expected [-1, 1]")


def build_lpips(net: str = "alex", weights_path: str | Path | None = None, allow_random: bool = False,
                seed: int = 0, device: str | torch.device | None = None) -> LPIPSModel:
    """The reference LPIPS (v0.1 heads from the package) with the trunk from genkit's registry."""
    import lpips

    if net not in NETS:
        raise ConfigError(f"unknown LPIPS net {net!r}; choose from {sorted(NETS)}")
    name = NETS[net]
    if weights_path is not None:
        weights_path = Path(weights_path).expanduser()
        state = weights_registry.load_state_dict(name, path=weights_path)
        source: Path | None = weights_path
    else:
        state = weights_registry.load_or_random(name, f"the LPIPS trunk ({net})", allow_random)
        source = None if state is None else weights_registry.weights_path(name)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # torchvision's deprecated `pretrained=` inside lpips
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    heads = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if state is None:
        variance_preserving_init(model.net, seed=seed)
        protocol = {keys.KEY_WEIGHTS: keys.RANDOM_WEIGHTS, keys.KEY_WEIGHTS_FILE: None,
                    "random_init": f"variance-preserving, seed {seed}"}
    else:
        _load_trunk(model, net, state, source)
        protocol = {keys.KEY_WEIGHTS: weights_registry.sha256_file(source), keys.KEY_WEIGHTS_FILE: str(source)}
    protocol.update({"net": net, "lpips_version": "0.1", "heads": str(heads),
                     "heads_sha256": weights_registry.sha256_file(heads), "input_range": "[-1, 1]",
                     "implementation": f"lpips {getattr(lpips, '__version__', '')}".strip()})
    out = LPIPSModel(model, protocol)
    if device is not None:
        out.to(device)
    return out


@torch.no_grad()
def lpips_distance(x: Tensor, y: Tensor, model: LPIPSModel, batch_size: int = 32) -> Tensor:
    """Per-pair LPIPS (N,) between images in [-1, 1], in batches."""
    if x.shape != y.shape:
        raise ValueError(f"LPIPS compares images of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    out = [model(x[i:i + batch_size], y[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


def pair_batches(k: int, batch_size: int):
    """The K(K-1)/2 index pairs ``i < j`` in batches of at most ``batch_size``: ``(i, j)`` index tensors."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    pairs = itertools.combinations(range(k), 2)
    while chunk := list(itertools.islice(pairs, batch_size)):
        yield torch.tensor([p[0] for p in chunk]), torch.tensor([p[1] for p in chunk])


@torch.no_grad()
def lpips_diversity(samples: Tensor, model: LPIPSModel, batch_size: int = 32) -> float:
    """Mean pairwise LPIPS among K samples (K, 3, H, W) made for one condition (mask); needs K >= 2.

    The pairs are streamed: only one batch of ``batch_size`` pairs is gathered at a time, so memory grows with
    K (the samples themselves), not with the K(K-1)/2 pairs.
    """
    if samples.dim() != 4 or samples.shape[0] < 2:
        raise ValueError(f"diversity needs at least 2 samples (K, 3, H, W), got {tuple(samples.shape)}")
    total, count = 0.0, 0
    for i, j in pair_batches(samples.shape[0], batch_size):
        d = model(samples[i], samples[j]).double()
        total += float(d.sum())
        count += d.numel()
    return total / count


class _LPIPSBase(Metric):
    """A torchmetrics ``Metric`` holding an LPIPS model (given, or built from the registry) and its protocol."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, net: str = "alex", weights_path: str | Path | None = None, allow_random: bool = False,
                 model: LPIPSModel | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model if model is not None else build_lpips(net, weights_path, allow_random)
        self.protocol = dict(self.model.protocol)


class LPIPSMetric(_LPIPSBase):
    """Mean LPIPS between paired images, as a torchmetrics ``Metric`` (sum and count states, summed in DDP)."""

    higher_is_better = False

    def __init__(self, net: str = "alex", weights_path: str | Path | None = None, allow_random: bool = False,
                 model: LPIPSModel | None = None, **kwargs: Any) -> None:
        super().__init__(net, weights_path, allow_random, model, **kwargs)
        self.add_state("sum_scores", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_squares", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, x: Tensor, y: Tensor) -> None:  # noqa: D102
        d = self.model(x, y).double()
        self.sum_scores += d.sum()
        self.sum_squares += (d * d).sum()
        self.total += d.numel()

    def compute(self) -> Tensor:  # noqa: D102
        if int(self.total) == 0:
            raise DataError(None, "LPIPS: no image pairs were given")
        return self.sum_scores / self.total


class LPIPSDiversity(_LPIPSBase):
    """Mean over conditions of the mean pairwise LPIPS among the samples of each condition.

    ``update(samples)`` takes (B, K, 3, H, W): B conditions (masks), K >= 2 samples each, in [-1, 1].
    """

    higher_is_better = True

    def __init__(self, net: str = "alex", weights_path: str | Path | None = None, allow_random: bool = False,
                 model: LPIPSModel | None = None, **kwargs: Any) -> None:
        super().__init__(net, weights_path, allow_random, model, **kwargs)
        self.add_state("sum_diversity", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("conditions", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: Tensor) -> None:  # noqa: D102
        if samples.dim() != 5:
            raise ValueError(f"expected samples (B, K, 3, H, W), got {tuple(samples.shape)}")
        for group in samples:
            self.sum_diversity += lpips_diversity(group, self.model)
            self.conditions += 1

    def compute(self) -> Tensor:  # noqa: D102
        if int(self.conditions) == 0:
            raise DataError(None, "LPIPS diversity: no samples were given")
        return self.sum_diversity / self.conditions


def lpips_between(folder1: str | Path, folder2: str | Path, net: str = "alex", weights_path: str | Path | None = None,
                  allow_random: bool = False, batch_size: int = 16, device: str | None = None,
                  reading: ReadPolicy | None = None, progress: bool = False, model: LPIPSModel | None = None,
                  skip_errors: bool = False) -> dict:
    """Mean LPIPS between images of two folders paired by file name (equal sizes required).

    ``reading``: how files are decoded (default :data:`genkit.core.reading.METRICS`); ``skip_errors``: a pair with an
    unreadable image is skipped and listed in the protocol instead of stopping.
    """
    from collections import Counter

    from tqdm.auto import tqdm

    from genkit.core.reading import METRICS
    from genkit.metrics.folders import paired_files, read_uint8_noted, size_label
    from genkit.metrics.inception import resolve_device

    pairs = paired_files(folder1, folder2)
    if model is None:
        model = build_lpips(net, weights_path, allow_random, device=resolve_device(device))
    scores: list[Tensor] = []
    sizes: dict[str, int] = {}
    conversions: Counter = Counter()
    skipped: list[str] = []
    batch_x: list[Tensor] = []
    batch_y: list[Tensor] = []

    def flush():
        if batch_x:
            x = torch.stack(batch_x).float() / 127.5 - 1.0
            y = torch.stack(batch_y).float() / 127.5 - 1.0
            scores.append(model(x, y).double().cpu())
            batch_x.clear()
            batch_y.clear()

    with tqdm(total=len(pairs), desc="LPIPS", unit="pair", disable=not progress, leave=False) as bar:
        for a, b in pairs:
            try:
                (xa, note_a), (xb, note_b) = (read_uint8_noted(f, reading, MIN_SIDE[net]) for f in (a, b))
            except DataError as exc:
                if not skip_errors:
                    raise
                skipped.append(str(exc))
                bar.update(1)
                continue
            conversions.update(n for n in (note_a, note_b) if n)
            if xa.shape != xb.shape:
                raise DataError(b, f"size {xb.shape[2]}x{xb.shape[1]} differs from its pair {a} "
                                f"({xa.shape[2]}x{xa.shape[1]}); LPIPS compares images of equal size")
            if batch_x and batch_x[0].shape != xa.shape:
                flush()
            batch_x.append(xa)
            batch_y.append(xb)
            label = size_label(xa.shape[2], xa.shape[1])
            sizes[label] = sizes.get(label, 0) + 1
            if len(batch_x) >= batch_size:
                flush()
            bar.update(1)
        flush()
    if not scores:
        raise DataError(None, f"LPIPS: no pair could be read ({len(skipped)} skipped); first: {skipped[0]}")
    d = torch.cat(scores)
    extra = {"image_reading": (reading or METRICS).record()}
    if conversions:
        extra["conversions"] = dict(sorted(conversions.items()))
    if skip_errors:
        extra.update(skip_errors=True, skipped=skipped)
    protocol = dict(model.protocol, metric="LPIPS", pairing="file name (stem)", **extra,
                    input1={"path": str(folder1), "kind": "folder"}, input2={"path": str(folder2), "kind": "folder"},
                    **{keys.KEY_NUM_SAMPLES: len(d), keys.KEY_IMAGE_SIZES: dict(sorted(sizes.items())),
                       keys.KEY_MIXED_SIZES: len(sizes) > 1, keys.KEY_RESIZE: "none"})
    return {keys.KEY_LPIPS: float(d.mean()), keys.KEY_LPIPS_STD: float(d.std(unbiased=False)) if len(d) > 1 else 0.0,
            keys.KEY_PROTOCOL: protocol}

"""Style-transfer metrics on the shared VGG-19 encoder (:class:`genkit.nn.vgg.VGG19Encoder`).

* content distance: mean squared difference of relu4_1 features of output and content;
* Gram style distance: over relu1_1 .. relu5_1, the mean squared difference of Gram matrices
  ``G = F F^T / (H W)`` (so images of different sizes compare), averaged over the layers;
* LPIPS to content (reference ``lpips`` package);
* patch-usage evenness, from how many times each style patch was used: the fraction of style patches used,
  the normalised entropy of the usage distribution (1 = perfectly even), max/mean usage and the coefficient of
  variation. Unconstrained nearest-patch matching (style-swap) scores low here; deep feature reshuffle high.

Images are RGB in [0, 1] (the style model's convention), shape (N, 3, H, W).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from genkit.core.errors import DataError
from genkit.metrics import keys
from genkit.nn.vgg import STYLE_TAPS, VGG19Encoder

CONTENT_TAP = "relu4_1"


def build_style_encoder(allow_random: bool = False, weights_path: str | None = None,
                        variant: str = "torchvision") -> VGG19Encoder:
    """The shared frozen VGG-19 (``variant``: torchvision or caffe) with the taps these metrics use."""
    return VGG19Encoder(taps=STYLE_TAPS, allow_random=allow_random, weights_path=weights_path, variant=variant)


def gram_matrix(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by the number of positions H*W (computed in float32 or wider)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    return f @ f.transpose(1, 2) / (h * w)


def _broadcast(a: Tensor, b: Tensor, what: str) -> tuple[Tensor, Tensor]:
    if a.shape[0] == b.shape[0]:
        return a, b
    if b.shape[0] == 1:
        return a, b.expand(a.shape[0], *b.shape[1:])
    raise ValueError(f"{what}: batch sizes {a.shape[0]} and {b.shape[0]} do not match (and the second is not 1)")


@torch.no_grad()
def content_distance(output: Tensor, content: Tensor, encoder: VGG19Encoder, tap: str = CONTENT_TAP) -> Tensor:
    """Per-image MSE (N,) between the ``tap`` features of output and content (equal image sizes)."""
    if output.shape[-2:] != content.shape[-2:]:
        raise ValueError(f"content distance needs equal sizes, got {tuple(output.shape[-2:])} and "
                         f"{tuple(content.shape[-2:])}")
    fo = encoder.encode(output, tap)
    fc = encoder.encode(content, tap)
    fo, fc = _broadcast(fo, fc, "content distance")
    return (fo - fc).pow(2).flatten(1).mean(dim=1)


@torch.no_grad()
def gram_style_distance(output: Tensor, style: Tensor, encoder: VGG19Encoder,
                        taps: Sequence[str] = STYLE_TAPS) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-image Gram distance (N,) averaged over ``taps``, and the per-layer values (sizes may differ)."""
    fo = encoder(output, taps)
    fs = encoder(style, taps)
    per_layer = {}
    for t in taps:
        go, gs = _broadcast(gram_matrix(fo[t]), gram_matrix(fs[t]), "Gram style distance")
        per_layer[t] = (go - gs).pow(2).flatten(1).mean(dim=1)
    total = torch.stack(list(per_layer.values())).mean(dim=0)
    return total, per_layer


@torch.no_grad()
def lpips_to_content(output: Tensor, content: Tensor, lpips_model) -> Tensor:
    """Per-image LPIPS (N,) between output and content, both in [0, 1]."""
    output, content = _broadcast(output, content, "LPIPS to content")
    return lpips_model(output * 2 - 1, content * 2 - 1)


def patch_usage_stats(counts: Tensor | Sequence[int], num_style_patches: int | None = None) -> dict[str, float]:
    """How evenly style patches were used, from a usage-count vector (one entry per style patch).

    ``counts`` may also be the assignment itself (one style index per content position) if
    ``num_style_patches`` is given; it is then turned into counts with ``bincount``.
    """
    c = torch.as_tensor(counts)
    if num_style_patches is not None:
        if c.dtype.is_floating_point:
            raise ValueError("an assignment must hold integer style-patch indices")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= num_style_patches):
            raise ValueError(f"assignment indices must be in [0, {num_style_patches})")
        c = torch.bincount(c.flatten().long(), minlength=num_style_patches)
    c = c.flatten().double()
    if c.numel() == 0:
        raise DataError(None, "patch usage: no style patches")
    if (c < 0).any():
        raise ValueError("patch usage counts must be non-negative")
    total = float(c.sum())
    if total <= 0:
        raise DataError(None, "patch usage: no patch was used")
    n = c.numel()
    p = c / total
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum())
    mean = total / n
    return {
        keys.KEY_USAGE_FRACTION: float((c > 0).double().mean()),
        keys.KEY_USAGE_ENTROPY: entropy / math.log(n) if n > 1 else 1.0,
        keys.KEY_USAGE_MAX_OVER_MEAN: float(c.max()) / mean,
        keys.KEY_USAGE_CV: float(c.std(unbiased=False)) / mean,
    }


@torch.no_grad()
def style_transfer_metrics(output: Tensor, content: Tensor, style: Tensor, encoder: VGG19Encoder,
                           lpips_model=None, usage: Tensor | None = None) -> dict[str, Any]:
    """All style-transfer numbers for a batch (means over the batch), with the weights provenance."""
    out: dict[str, Any] = {
        keys.KEY_CONTENT: float(content_distance(output, content, encoder).mean()),
    }
    style_total, per_layer = gram_style_distance(output, style, encoder)
    out[keys.KEY_STYLE] = float(style_total.mean())
    out[keys.KEY_STYLE + "_per_layer"] = {t: float(v.mean()) for t, v in per_layer.items()}
    if lpips_model is not None:
        out[keys.KEY_LPIPS_CONTENT] = float(lpips_to_content(output, content, lpips_model).mean())
    if usage is not None:
        out.update(patch_usage_stats(usage))
    from genkit.core import weights

    vgg_sha = getattr(encoder, "weights_sha256", None) or weights.provenance().get("vgg19", {}).get("sha256")
    protocol = {"vgg19": keys.RANDOM_WEIGHTS if encoder.random_weights else f"sha256:{vgg_sha}",
                "encoder": getattr(encoder, "identity", "vgg19-torchvision"),
                "content_tap": CONTENT_TAP, "style_taps": list(STYLE_TAPS),
                "gram": "F F^T / (H W), MSE, mean over taps", "input_range": "[0, 1]",
                keys.KEY_NUM_SAMPLES: int(output.shape[0])}
    if lpips_model is not None:
        protocol["lpips"] = dict(lpips_model.protocol)
    out[keys.KEY_PROTOCOL] = protocol
    return out


class StyleTransferMetrics(Metric):
    """Running means of content distance, Gram style distance and (optionally) LPIPS to content."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, encoder: VGG19Encoder | None = None, lpips_model=None, allow_random: bool = False,
                 vgg_variant: str = "torchvision", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder if encoder is not None else build_style_encoder(allow_random, variant=vgg_variant)
        self.lpips_model = lpips_model
        for name in ("content", "style", "lpips"):
            self.add_state(f"sum_{name}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, output: Tensor, content: Tensor, style: Tensor) -> None:  # noqa: D102
        self.sum_content += content_distance(output, content, self.encoder).double().sum()
        self.sum_style += gram_style_distance(output, style, self.encoder)[0].double().sum()
        if self.lpips_model is not None:
            self.sum_lpips += lpips_to_content(output, content, self.lpips_model).double().sum()
        self.total += output.shape[0]

    def compute(self) -> dict[str, Tensor]:  # noqa: D102
        if int(self.total) == 0:
            raise DataError(None, "style-transfer metrics: no images were given")
        out = {keys.KEY_CONTENT: self.sum_content / self.total, keys.KEY_STYLE: self.sum_style / self.total}
        if self.lpips_model is not None:
            out[keys.KEY_LPIPS_CONTENT] = self.sum_lpips / self.total
        return out

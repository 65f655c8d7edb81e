"""VGG-19 encoder with named taps (relu1_1 .. relu5_1), shared by the style model and the perceptual losses.

Input: RGB in [0, 1]; each variant's own preprocessing happens inside. Two variants (same architecture and key
layout, different weights and preprocessing):

* ``torchvision`` (default): torchvision's ImageNet VGG-19; RGB normalised with the ImageNet mean/std.
* ``caffe``: the original Caffe VGG-19 (Simonyan & Zisserman) as converted by jcjohnson/pytorch-vgg
  (``vgg19-d01eb7cb.pth``), the encoder of the official deep-feature-reshuffle release and of most style-transfer
  work; BGR in 0..255 minus the per-channel mean (103.939, 116.779, 123.68), no division by a std. Its features
  are on a much larger scale than torchvision's, so decoders and loss weights are specific to one encoder.

:attr:`VGG19Encoder.identity` names the variant and the weights file's sha256 (or ``random``): what decoders and
metric protocols record, so a decoder trained for one encoder can refuse another.

Frozen (eval mode, no gradients to its parameters) by default; gradients still flow to the input, which the
optimisation path and losses need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from genkit.core import weights as weights_registry
from genkit.core.errors import ConfigError
from genkit.nn.init import variance_preserving_init
from genkit.nn.layout import conv_layout, standard_layout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # on 0..255 pixel values

# index of each ReLU in torchvision's vgg19().features
VGG19_RELU_INDEX = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}
VGG19_CHANNELS = {name: 64 * 2 ** min(int(name[4]) - 1, 3) for name in VGG19_RELU_INDEX}
# spatial downsampling factor of each tap relative to the input
VGG19_STRIDE = {name: 2 ** (int(name[4]) - 1) for name in VGG19_RELU_INDEX}
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class ImageNetNormalize(nn.Module):
    """RGB in [0, 1] -> ``(x - mean) / std`` with the ImageNet statistics (torchvision's models)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CaffeNormalize(nn.Module):
    """RGB in [0, 1] -> BGR in 0..255 minus the Caffe VGG mean (103.939, 116.779, 123.68); no std."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean_bgr


@dataclass(frozen=True)
class VGGVariant:
    """One VGG-19: its registry weights and the preprocessing those weights were trained with."""

    name: str
    weights_name: str  # entry in genkit.core.weights.REGISTRY
    normalize: Callable[[], nn.Module]
    preprocessing: str


VGG19_VARIANTS: dict[str, VGGVariant] = {
    v.name: v
    for v in (
        VGGVariant("torchvision", "vgg19", ImageNetNormalize, "RGB in [0, 1], ImageNet mean/std"),
        VGGVariant("caffe", "vgg19-caffe", CaffeNormalize, "BGR in 0..255 minus (103.939, 116.779, 123.68)"),
    )
}


def get_variant(name: str) -> VGGVariant:
    if name not in VGG19_VARIANTS:
        raise ConfigError(f"unknown VGG-19 variant {name!r}; choose one of {', '.join(VGG19_VARIANTS)}")
    return VGG19_VARIANTS[name]


def build_vgg19_features(weights: str = "imagenet", allow_random: bool = False,
                         weights_path: str | None = None, variant: str = "torchvision") -> tuple[nn.Sequential, bool]:
    """``vgg19().features`` with the variant's pretrained weights from the registry (or random, if allowed).

    Both variants' files use torchvision's key layout; only ``features.*`` is read. Returns
    ``(features, is_random)``.
    """
    from torchvision.models.vgg import cfgs, make_layers

    name = get_variant(variant).weights_name
    consumer = f"the VGG-19 encoder ({variant})"
    # only the convolutional trunk: building all of vgg19() would also allocate its 120M-parameter classifier
    net = make_layers(cfgs["E"], batch_norm=False)
    if weights == "random":
        weights_registry.warn_random(name, consumer)
        return variance_preserving_init(net), True
    state = weights_registry.load_or_random(name, consumer, allow_random, path=weights_path)
    if state is None:
        return variance_preserving_init(net), True
    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    source = weights_path or weights_registry.provenance().get(name, {}).get("file")
    weights_registry.load_into(net, feats, source, f"the {variant} VGG-19 ({weights_registry.get_entry(name).file_name}, "
                               "torchvision's key layout)", prefix="features.")
    return net, False


class VGG19Encoder(nn.Module):
    """Frozen VGG-19 trunk returning a dict of named activations.

    ``taps`` fixes the deepest layer kept (the rest of the network is dropped). ``forward(x, taps=...)`` may ask
    for any subset of the constructed taps.
    """

    def __init__(self, taps: Sequence[str] = STYLE_TAPS, weights: str = "imagenet", allow_random: bool = False,
                 weights_path: str | None = None, frozen: bool = True, variant: str = "torchvision"):
        super().__init__()
        unknown = [t for t in taps if t not in VGG19_RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG-19 taps {unknown}; known: {list(VGG19_RELU_INDEX)}")
        spec = get_variant(variant)
        self.variant = spec.name
        self.taps = tuple(sorted(taps, key=VGG19_RELU_INDEX.__getitem__))
        features, self.random_weights = build_vgg19_features(weights, allow_random, weights_path, spec.name)
        # the file this encoder holds (the registry's provenance is per process and may change later)
        used = weights_registry.provenance().get(spec.weights_name, {})
        self.weights_sha256 = None if self.random_weights else used.get("sha256")
        last = VGG19_RELU_INDEX[self.taps[-1]]
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        self.normalize = spec.normalize()
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    @property
    def identity(self) -> str:
        """``vgg19-<variant>:sha256:<hex>`` or ``vgg19-<variant>:random``: which encoder this is, for records."""
        return f"vgg19-{self.variant}:" + ("random" if self.random_weights else f"sha256:{self.weights_sha256}")

    def train(self, mode: bool = True):
        return super().train(False if self.frozen else mode)

    @classmethod
    def from_option(cls, taps: Sequence[str], vgg_weights: str | None = None, allow_random: bool = False,
                    variant: str = "torchvision") -> "VGG19Encoder":
        """The encoder a user option names: ``vgg_weights`` is None (the registry's file for ``variant``),
        ``"random"``, or a weights file in torchvision's key layout."""
        return cls(taps=taps, weights="random" if vgg_weights == "random" else "imagenet", allow_random=allow_random,
                   weights_path=None if vgg_weights in (None, "random") else vgg_weights, variant=variant)

    def forward(self, x: torch.Tensor, taps: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(self.taps if taps is None else taps)
        missing = wanted - set(self.taps)
        if missing:
            raise ValueError(f"taps {sorted(missing)} were not built; encoder has {self.taps}")
        deepest = max(VGG19_RELU_INDEX[t] for t in wanted)
        index_to_name = {VGG19_RELU_INDEX[t]: t for t in wanted}
        out = {}
        h = conv_layout(self.normalize(x))
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in index_to_name:
                out[index_to_name[i]] = standard_layout(h)
            if i >= deepest:
                break
        return out

    def encode(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        return self.forward(x, (tap,))[tap]

    def forward_from(self, h: torch.Tensor, start: str, end: str) -> torch.Tensor:
        """Continue the trunk from activation ``start`` (exclusive) to ``end`` (inclusive)."""
        a, b = VGG19_RELU_INDEX[start], VGG19_RELU_INDEX[end]
        if b < a:
            raise ValueError(f"{end} comes before {start}")
        h = conv_layout(h)
        for layer in list(self.features)[a + 1: b + 1]:
            h = layer(h)
        return standard_layout(h)

"""VGG-19 encoder with named taps (relu1_1 .. relu5_1), shared by the style model and the perceptual losses.

Input: RGB in [0, 1]; the ImageNet normalisation happens inside. Frozen (eval mode, no gradients to its
parameters) by default; gradients still flow to the input, which the optimisation path and losses need.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from genkit import weights as weights_registry
from genkit.nn.init import variance_preserving_init

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_vgg19_features(weights: str = "imagenet", allow_random: bool = False,
                         weights_path: str | None = None) -> tuple[nn.Sequential, bool]:
    """torchvision's ``vgg19().features`` with ImageNet weights from the registry (or random, if allowed).

    Returns ``(features, is_random)``.
    """
    from torchvision.models.vgg import cfgs, make_layers

    # only the convolutional trunk: building all of vgg19() would also allocate its 120M-parameter classifier
    net = make_layers(cfgs["E"], batch_norm=False)
    if weights == "random":
        weights_registry.warn_random("vgg19", "the VGG-19 encoder")
        return variance_preserving_init(net), True
    state = weights_registry.load_or_random("vgg19", "the VGG-19 encoder", allow_random, path=weights_path)
    if state is None:
        return variance_preserving_init(net), True
    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    source = weights_registry.provenance().get("vgg19", {}).get("file")
    weights_registry.load_into(net, feats, source, "torchvision's VGG-19 (vgg19-dcbb9e9d.pth)", prefix="features.")
    return net, False


class VGG19Encoder(nn.Module):
    """Frozen VGG-19 trunk returning a dict of named activations.

    ``taps`` fixes the deepest layer kept (the rest of the network is dropped). ``forward(x, taps=...)`` may ask
    for any subset of the constructed taps.
    """

    def __init__(self, taps: Sequence[str] = STYLE_TAPS, weights: str = "imagenet", allow_random: bool = False,
                 weights_path: str | None = None, frozen: bool = True):
        super().__init__()
        unknown = [t for t in taps if t not in VGG19_RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG-19 taps {unknown}; known: {list(VGG19_RELU_INDEX)}")
        self.taps = tuple(sorted(taps, key=VGG19_RELU_INDEX.__getitem__))
        features, self.random_weights = build_vgg19_features(weights, allow_random, weights_path)
        last = VGG19_RELU_INDEX[self.taps[-1]]
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        self.normalize = ImageNetNormalize()
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True):
        return super().train(False if self.frozen else mode)

    def forward(self, x: torch.Tensor, taps: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        wanted = set(self.taps if taps is None else taps)
        missing = wanted - set(self.taps)
        if missing:
            raise ValueError(f"taps {sorted(missing)} were not built; encoder has {self.taps}")
        deepest = max(VGG19_RELU_INDEX[t] for t in wanted)
        index_to_name = {VGG19_RELU_INDEX[t]: t for t in wanted}
        out = {}
        h = self.normalize(x)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in index_to_name:
                out[index_to_name[i]] = h
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
        for layer in list(self.features)[a + 1: b + 1]:
            h = layer(h)
        return h

"""The community face parser: BiSeNet as built by zllrunning/face-parsing.PyTorch (``79999_iter.pth``, MIT).

Architecture (BiSeNet, Yu et al. 2018, as that repository builds it):

* **context path**: a ResNet-18 trunk (torchvision's) gives features at 1/8, 1/16 and 1/32. The pooled 1/32
  feature through a 1x1 conv-BN-ReLU is a global context vector, added to the attention-refined 1/32 feature.
  Attention refinement modules (3x3 conv-BN-ReLU, then a channel attention: global average pool, 1x1 conv, BN,
  sigmoid) refine the 1/32 and 1/16 features; each step up is a nearest upsampling and a 3x3 conv-BN-ReLU head.
* **spatial path**: the ResNet's own 1/8 feature (the repository replaced the separate 3-conv spatial path).
* **feature fusion module**: concatenation, 1x1 conv-BN-ReLU, a squeeze-excitation attention ``a`` (pool, 1x1
  conv, ReLU, 1x1 conv, sigmoid), output ``f + f * a``.
* **three heads** (3x3 conv-BN-ReLU, 1x1 conv without bias) on the fused 1/8, the 1/8 context and the 1/16 context
  features, each upsampled bilinearly with ``align_corners=True`` to the input size. The first one parses; the
  other two were training-time auxiliaries.

Parameter names equal the published state dict's, so ``79999_iter.pth`` loads strictly. :class:`BiSeNet` takes an
ImageNet-normalised image; :class:`BiSeNetParser` is the genkit parser interface (RGB in [0, 1], the published
512 px input protocol, labels in :data:`~genkit.data.schemas.BISENET19`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, ResNet

from genkit.data.schemas import BISENET19, LabelSchema
from genkit.core.errors import CheckpointError
from genkit.nn.init import variance_preserving_init
from genkit.nn.vgg import ImageNetNormalize

PRETRAINED_NAME = "bisenet-celebamask"  # the weights registry entry of 79999_iter.pth
INPUT_SIZE = 512  # the published protocol: RGB resized to 512 x 512, ImageNet mean/std


class ConvBNReLU(nn.Module):
    """Convolution (no bias, 'same' padding), batch norm, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ResNet18Trunk(ResNet):
    """torchvision's ResNet-18 without pooling and classifier, returning the 1/8, 1/16 and 1/32 features."""

    def __init__(self):
        super().__init__(BasicBlock, [2, 2, 2, 2])
        del self.avgpool, self.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinement(nn.Module):
    """3x3 conv-BN-ReLU, then re-weight its channels by ``sigmoid(BN(conv1x1(global average)))``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch, 3)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * attention


class ContextPath(nn.Module):
    """ResNet-18 features refined top-down: returns (1/8 trunk feature, 1/8 context, 1/16 context)."""

    def __init__(self):
        super().__init__()
        self.resnet = ResNet18Trunk()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))  # (B, 128, 1, 1), broadcast below
        context16 = self.conv_head32(F.interpolate(self.arm32(feat32) + global_context, size=feat16.shape[-2:],
                                                   mode="nearest"))
        context8 = self.conv_head16(F.interpolate(self.arm16(feat16) + context16, size=feat8.shape[-2:],
                                                  mode="nearest"))
        return feat8, context8, context16


class FeatureFusion(nn.Module):
    """Fuse the spatial and context features: 1x1 conv-BN-ReLU of the concatenation, plus its attended copy."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, 1)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat + feat * attention


class OutputHead(nn.Module):
    """3x3 conv-BN-ReLU and a 1x1 classifier; logits upsampled (bilinear, corners aligned) to ``size``."""

    def __init__(self, in_ch: int, mid_ch: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch, 3)
        self.conv_out = nn.Conv2d(mid_ch, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.conv_out(self.conv(x)), size=size, mode="bilinear", align_corners=True)


class BiSeNet(nn.Module):
    """BiSeNet face parser; ``forward`` returns the main logits and the two auxiliary ones, all at input size.

    Input: (B, 3, H, W) normalised with the ImageNet mean/std. Randomly initialised (variance-preserving) until a
    state dict is loaded.
    """

    def __init__(self, n_classes: int = 19):
        super().__init__()
        self.n_classes = int(n_classes)
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, n_classes)
        self.conv_out16 = OutputHead(128, 64, n_classes)
        self.conv_out32 = OutputHead(128, 64, n_classes)
        variance_preserving_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = tuple(x.shape[-2:])
        feat8, context8, context16 = self.cp(x)
        return (self.conv_out(self.ffm(feat8, context8), size), self.conv_out16(context8, size),
                self.conv_out32(context16, size))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The main head only (what parsing uses; skips the auxiliary heads)."""
        feat8, context8, _ = self.cp(x)
        return self.conv_out(self.ffm(feat8, context8), tuple(x.shape[-2:]))


class BiSeNetParser(nn.Module):
    """A :class:`BiSeNet` behind genkit's parser interface: RGB in [0, 1] (B, 3, H, W) -> logits (B, 19, H, W).

    The image is normalised with the ImageNet mean/std and, when ``input_size`` is set (the published 512), resized
    bilinearly to ``input_size`` x ``input_size``; the logits are resized back to H x W. Differentiable with respect
    to the image (for the parsing loss). Labels follow :data:`~genkit.data.schemas.BISENET19`; ``load_parser(...,
    expected_schema="helen11")`` maps them through the declared table.
    """

    multiple = 1  # any input size: the network resizes (and handles odd sizes itself)

    def __init__(self, net: BiSeNet | None = None, input_size: int | None = INPUT_SIZE,
                 schema: LabelSchema = BISENET19):
        super().__init__()
        self.net = net if net is not None else BiSeNet(schema.num_classes)
        if self.net.n_classes != schema.num_classes:
            raise ValueError(f"BiSeNet has {self.net.n_classes} classes, schema {schema.name!r} {schema.num_classes}")
        self.normalize = ImageNetNormalize()
        self.input_size = input_size
        self.schema = schema
        self.num_classes = schema.num_classes
        self.image_size = INPUT_SIZE  # the size it was trained for (the default output size of `genkit parse`)
        self.class_weights = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"BiSeNetParser expects (B, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")
        size = tuple(x.shape[-2:])
        x = self.normalize(x)
        if self.input_size and size != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=max(size) > self.input_size)
        logits = self.net.logits(x)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) int64 for images in [0, 1]."""
        return self(x).argmax(dim=1)


def is_bisenet_state(state: dict) -> bool:
    """Whether a state dict looks like face-parsing.PyTorch's BiSeNet (optionally ``module.``-prefixed)."""
    return any(isinstance(k, str) and k.endswith("cp.resnet.conv1.weight") for k in state)


def bisenet_from_state(state: dict, path: str | Path, input_size: int | None = INPUT_SIZE) -> BiSeNetParser:
    """A :class:`BiSeNetParser` (eval mode) holding ``state``, loaded strictly; a clear error names ``path`` when
    the state dict is not in the published layout."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    net = BiSeNet(BISENET19.num_classes)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(getattr(state[k], 'shape', ()))} instead of {tuple(v.shape)}" for k, v in expected.items()
             if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)]
    problems = [f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{path}: not a BiSeNet face-parser state dict in the published 79999_iter.pth layout "
                              f"(19 classes); {'; '.join(problems)}")
    net.load_state_dict(state, strict=True)
    return BiSeNetParser(net, input_size=input_size).eval()

"""Feature extractors of the clean-fid and pytorch-fid protocols, built from those libraries' own pieces.

Each takes uint8 images (N, 3, H, W) as genkit's folder reader decodes them (``Image.open(f).convert("RGB")``,
what both libraries do) and returns (N, 2048) float32 pool3 features exactly as its library computes them:

* **pytorch-fid**: ``x / 255`` in float32 (torchvision ``ToTensor``), then pytorch-fid's ``InceptionV3`` (FID
  Inception blocks, weights ``pt_inception-2015-12-05-6726825d.pth``), which resizes inside the network with
  ``F.interpolate(bilinear, align_corners=False)`` and scales to [-1, 1].
* **clean-fid** ``clean``: each image resized to 299x299 per channel in float32 with PIL bicubic (no quantisation
  after the resize: clean-fid's ``build_resizer("clean")``), then the TorchScript Inception
  ``inception-2015-12-05.pt`` (NVIDIA's translation of the TF graph) on ``(x - 128) / 128`` without resizing.
* clean-fid ``legacy_tensorflow``: no resize outside; the TorchScript model's own resize (``return_features=True``).
* clean-fid ``legacy_pytorch``: ``F.interpolate(bilinear)`` of the 0-255 float image outside the network, then
  pytorch-fid's network on ``x / 255`` without its resize.

The libraries' constructors download weights; genkit hands them the file it loaded (safely: ``torch.load`` with
``weights_only=True`` for the state dict; ``torch.jit.load`` for clean-fid's TorchScript file, as clean-fid does).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genkit.core import weights as weights_registry
from genkit.core.errors import ConfigError, WeightsFileError, WeightsUnavailableError
from genkit.metrics import keys
from genkit.metrics.inception import InceptionFeatures
from genkit.nn.init import variance_preserving_init

PYTORCH_FID_WEIGHTS = "inception-pytorch-fid"
CLEAN_FID_FILE = "inception-2015-12-05.pt"
CLEAN_FID_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
CLEAN_FID_MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")


class ProtocolFeatures(InceptionFeatures):
    """uint8 images (N, 3, H, W) -> (N, 2048) float32 features; ``protocol`` says which weights and pipeline.
    Subclasses give :meth:`features`, the library's own pipeline."""

    takes_uint8 = True  # float images are rounded to uint8 first (inception.images_or_features), as saving would

    @property
    def device(self) -> torch.device:
        for t in list(self.net.parameters()) + list(self.net.buffers()):
            return t.device
        return torch.device("cpu")

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        return self.features(images).float()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------ pytorch-fid


def _fid_inception_blocks(module) -> nn.Module:
    """pytorch-fid's ``fid_inception_v3()`` structure (the library's own blocks) without its download."""
    net = module._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = module.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = module.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = module.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = module.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = module.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = module.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = module.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = module.FIDInceptionE_1(1280)
    net.Mixed_7c = module.FIDInceptionE_2(2048)
    return net


@contextlib.contextmanager
def _handing_over(module, inception: nn.Module):
    """Make ``module.fid_inception_v3()`` return ``inception`` while the library's ``InceptionV3`` is built."""
    original = module.fid_inception_v3
    module.fid_inception_v3 = lambda: inception
    try:
        yield
    finally:
        module.fid_inception_v3 = original


def _pytorch_fid_net(module, state: dict | None, seed: int, resize_input: bool, where: str) -> nn.Module:
    inception = _fid_inception_blocks(module)
    if state is None:
        variance_preserving_init(inception, seed=seed)
    else:
        try:
            inception.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsFileError(f"{where}: not pytorch-fid's FID Inception state dict "
                                   f"({str(exc).splitlines()[0]} ...)") from None
    with _handing_over(module, inception):
        return module.InceptionV3([3], resize_input=resize_input)


def _pytorch_fid_state(weights_path, allow_random: bool) -> tuple[dict | None, str, str | None]:
    """``(state or None, weights record, file)`` of pytorch-fid's weights (``None``: RANDOM)."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        return (weights_registry.load_state_dict(PYTORCH_FID_WEIGHTS, path=path),
                weights_registry.sha256_file(path), str(path))
    try:
        state = weights_registry.load_state_dict(PYTORCH_FID_WEIGHTS)
    except WeightsUnavailableError:
        if not allow_random:
            raise
        weights_registry.warn_random(PYTORCH_FID_WEIGHTS, "the pytorch-fid Inception")
        return None, keys.RANDOM_WEIGHTS, None
    path = weights_registry.weights_path(PYTORCH_FID_WEIGHTS)
    return state, weights_registry.sha256_file(path), str(path)


class PytorchFidFeatures(ProtocolFeatures):
    """pytorch-fid: ``ToTensor`` (x / 255), its network resizing inside (bilinear) and scaling to [-1, 1]."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device).to(torch.float32).div(255)
        return self.net(x)[0].squeeze(3).squeeze(2)


class CleanFidLegacyPytorchFeatures(ProtocolFeatures):
    """clean-fid ``legacy_pytorch``: bilinear ``F.interpolate`` of 0-255 floats outside, pytorch-fid's network."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = clean_fid_inputs(images, "legacy_pytorch").to(self.device)
        return self.net(x / 255)[0].squeeze(-1).squeeze(-1)


# -------------------------------------------------------------------------------------------------- clean-fid


def clean_fid_inputs(images: torch.Tensor, mode: str) -> torch.Tensor:
    """clean-fid's ``ResizeDataset`` per image: its resizer (``build_resizer(mode)``), then ``ToTensor``."""
    from cleanfid.resize import build_resizer
    from torchvision.transforms import ToTensor

    resize, to_tensor = build_resizer(mode), ToTensor()
    out = []
    for img in images.permute(0, 2, 3, 1).cpu().numpy():
        r = resize(np.ascontiguousarray(img))
        out.append(to_tensor(np.array(r)) * 255 if r.dtype == np.uint8 else to_tensor(r))
    return torch.stack(out)


class CleanFidFeatures(ProtocolFeatures):
    """clean-fid ``clean`` / ``legacy_tensorflow`` on its TorchScript Inception (clean-fid's ``InceptionV3W``)."""

    def __init__(self, net: nn.Module, protocol: dict, mode: str):
        super().__init__(net, protocol)
        self.mode = mode

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = clean_fid_inputs(images, self.mode).to(self.device)
        if self.mode == "legacy_tensorflow":
            return self.net(x, return_features=True).view((x.shape[0], 2048))
        return self.net.layers.forward((x - 128) / 128).view((x.shape[0], 2048))


def clean_fid_weights_path(weights_path=None) -> Path:
    """``--weights`` or ``inception-2015-12-05.pt`` in genkit's weights folder; a clear error when missing."""
    path = Path(weights_path).expanduser() if weights_path else weights_registry.cache_dir() / CLEAN_FID_FILE
    if not path.is_file():
        raise WeightsUnavailableError(
            f"clean-fid's TorchScript Inception is not available: {path} does not exist.\n"
            f"  download:  {CLEAN_FID_URL} (clean-fid loads it from /tmp; genkit does not download it)\n"
            f"  fix:       copy the file to {weights_registry.cache_dir() / CLEAN_FID_FILE}, or name it with --weights")
    return path


def _load_torchscript(path: Path) -> nn.Module:
    try:
        net = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - any damaged or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsFileError(f"{path}: not a TorchScript Inception as clean-fid loads it ({first})") from None
    if not hasattr(net, "layers"):
        raise WeightsFileError(f"{path}: a TorchScript file without the 'layers' module of clean-fid's Inception")
    return net


def _base_protocol(name: str, weights: str, weights_file: str | None, extractor: str, resize: str,
                   seed: int | None) -> dict:
    protocol = {keys.KEY_FID_PROTOCOL: name, keys.KEY_WEIGHTS: weights, keys.KEY_WEIGHTS_FILE: weights_file}
    if seed is not None:
        protocol["random_init"] = f"variance-preserving, seed {seed}"
    protocol.update({keys.KEY_FEATURE_EXTRACTOR: extractor, "feature": keys.INCEPTION_FEATURE,
                     keys.KEY_RESIZE: resize, "input": "uint8 RGB", "statistics": "float64"})
    return protocol


def build_pytorch_fid(weights_path=None, allow_random: bool = False, seed: int = 0, legacy_clean_fid: bool = False,
                      resize: str = "", name: str = "pytorch-fid") -> ProtocolFeatures:
    """pytorch-fid's network (or clean-fid's copy of it for ``legacy_pytorch``) on the registry's weights."""
    if legacy_clean_fid:
        from cleanfid import inception_pytorch as module
    else:
        from pytorch_fid import inception as module
    state, weights, file = _pytorch_fid_state(weights_path, allow_random)
    net = _pytorch_fid_net(module, state, seed, resize_input=not legacy_clean_fid, where=str(file))
    cls = CleanFidLegacyPytorchFeatures if legacy_clean_fid else PytorchFidFeatures
    extractor = ("clean-fid inception_pytorch.InceptionV3 (pytorch-fid's FID Inception)" if legacy_clean_fid
                 else "pytorch-fid InceptionV3 (FID Inception blocks, TF 2015-12-05 weights ported)")
    return cls(net, _base_protocol(name, weights, file, extractor, resize, seed if state is None else None))


def build_clean_fid(mode: str, weights_path=None, allow_random: bool = False, resize: str = "",
                    name: str = "clean-fid") -> ProtocolFeatures:
    """clean-fid's ``clean`` or ``legacy_tensorflow`` extractor on the TorchScript file (no RANDOM variant)."""
    if mode not in ("clean", "legacy_tensorflow"):
        raise ConfigError(f"clean-fid mode {mode!r} does not run the TorchScript Inception")
    try:
        path = clean_fid_weights_path(weights_path)
    except WeightsUnavailableError as exc:
        if allow_random:
            raise WeightsUnavailableError(f"{exc}\n  (--allow-random: clean-fid's network is a TorchScript file, "
                                          "so there is no RANDOM variant of it)") from None
        raise
    net = _load_torchscript(path)
    extractor = "clean-fid InceptionV3W (TorchScript inception-2015-12-05.pt, NVIDIA's TF-graph translation)"
    protocol = _base_protocol(name, weights_registry.sha256_file(path), str(path), extractor, resize, None)
    return CleanFidFeatures(net, protocol, mode)

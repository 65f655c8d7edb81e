"""The FID/KID feature extractor, built in one place.

It *is* torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF 2015-12-05 Inception graph, uint8 input,
TF1-exact bilinear resize to 299, pool3 features), so genkit and torch-fidelity compute the same features from
the same weights file. Two differences in how it is constructed:

* weights are read by genkit's registry (``torch.load(weights_only=True)``, hash recorded), never by
  torch-fidelity's own loader (which unpickles with ``weights_only=False`` or downloads);
* with ``allow_random`` and no file, the network gets a seeded variance-preserving initialisation (features stay
  at unit scale instead of shrinking to ~0), and :meth:`InceptionFeatures.save_weights` writes exactly that
  network's state dict, so torch-fidelity can be fed the same file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genkit.core import weights as weights_registry
from genkit.core.device import resolve_device  # noqa: F401  (fid, kid, lpips import it from here)
from genkit.core.errors import WeightsUnavailableError
from genkit.metrics import keys
from genkit.nn.init import variance_preserving_init

log = logging.getLogger(__name__)

WEIGHTS_NAME = "inception-fid"
_CONSUMER = "the FID/KID Inception"


class _InceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 with its weights handed over in memory.

    torch-fidelity's constructor always loads weights (from a URL, or ``torch.load(path, weights_only=False)``)
    and then calls ``self.load_state_dict``. We give it an empty in-memory file and take over that one
    ``load_state_dict`` call: it loads the state dict genkit read safely, or applies the random initialisation.
    """

    def __init__(self, state_dict: dict | None, seed: int = 0, features: tuple[str, ...] = (keys.INCEPTION_FEATURE,)):
        object.__setattr__(self, "_genkit_pending", (state_dict, seed))
        placeholder = io.BytesIO()
        torch.save({}, placeholder)
        placeholder.seek(0)
        super().__init__("inception-v3-compat", list(features), feature_extractor_weights_path=placeholder)
        if "_genkit_pending" in self.__dict__:  # torch-fidelity changed how it loads weights: never run untouched
            raise RuntimeError("torch-fidelity's FeatureExtractorInceptionV3 did not call load_state_dict; "
                               "genkit cannot install its weights in this torch-fidelity version")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: D102
        pending = self.__dict__.pop("_genkit_pending", None)
        if pending is None:  # an ordinary call after construction
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        real_state, seed = pending
        if real_state is None:
            variance_preserving_init(self, seed=seed)
            return nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(real_state, strict=True)


class InceptionFeatures(nn.Module):
    """uint8 images (N, 3, H, W), any H and W -> pool3 features (N, 2048) float32.

    ``num_features`` is an int attribute, so torchmetrics accepts it as a custom ``feature=`` module. It never
    leaves eval mode. :attr:`protocol` says which weights it runs (sha256, or ``RANDOM``) and how it resizes.
    """

    num_features: int = keys.INCEPTION_NUM_FEATURES

    def __init__(self, net: _InceptionV3, protocol: dict):
        super().__init__()
        self.net = net
        self.protocol = dict(protocol)
        self.requires_grad_(False)
        self.eval()

    @property
    def random_weights(self) -> bool:
        return self.protocol[keys.KEY_WEIGHTS] == keys.RANDOM_WEIGHTS

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def train(self, mode: bool = True):  # noqa: D102 - always eval (batch-norm statistics are fixed)
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f"InceptionFeatures expects uint8 images in [0, 255], got {images.dtype} "
                             "(convert with genkit.metrics.inception.to_uint8)")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        (features,) = self.net(images.to(self.device))
        return features

    def save_weights(self, path: str | Path) -> Path:
        """Write this network's state dict (e.g. the random one) so other tools can load the same weights."""
        from genkit.core.checkpoints import atomic_torch_save

        state = {k: v.detach().cpu().float() for k, v in self.net.state_dict().items()}
        return atomic_torch_save(state, path)


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """Float images in ``value_range`` -> uint8, rounded exactly as :func:`genkit.core.saving.save_image` rounds.

    So a metric computed in memory (validation) equals the one computed on the saved PNGs. uint8 input passes
    through unchanged.
    """
    if images.dtype == torch.uint8:
        return images
    if value_range is None:
        raise ValueError(f"got {images.dtype} images; pass uint8 images or say their value_range")
    if not images.is_floating_point():
        raise ValueError(f"expected uint8 or floating-point images, got {images.dtype}")
    lo, hi = value_range
    x = ((images.detach() - lo) / (hi - lo)).clamp(0.0, 1.0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8)


def _protocol(weights: str, weights_file: str | None, seed: int | None) -> dict:
    protocol = {keys.KEY_FID_PROTOCOL: "torch-fidelity", keys.KEY_WEIGHTS: weights, keys.KEY_WEIGHTS_FILE: weights_file}
    if seed is not None:
        protocol["random_init"] = f"variance-preserving, seed {seed}"
    protocol.update({keys.KEY_FEATURE_EXTRACTOR: keys.INCEPTION_NAME, "feature": keys.INCEPTION_FEATURE,
                     keys.KEY_RESIZE: keys.RESIZE_MODE, "input": "uint8 RGB", "statistics": "float64"})
    return protocol


def random_inception(seed: int = 0, device: str | torch.device | None = None) -> InceptionFeatures:
    """The FID Inception with RANDOM weights (variance-preserving, seeded), chosen explicitly; logged loudly."""
    weights_registry.warn_random(WEIGHTS_NAME, _CONSUMER)
    model = InceptionFeatures(_InceptionV3(None, seed=seed), _protocol(keys.RANDOM_WEIGHTS, None, seed))
    return model if device is None else model.to(device)


def build_inception(weights_path: str | Path | None = None, allow_random: bool = False, seed: int = 0,
                    device: str | torch.device | None = None) -> InceptionFeatures:
    """The FID/KID Inception: weights from ``weights_path``, else the registry's ``inception-fid`` file.

    Offline and without the file, a :class:`~genkit.core.errors.WeightsUnavailableError` names the file and where to
    put it; with ``allow_random`` the network is randomly initialised (variance-preserving, ``seed``), a loud
    warning is logged, and the protocol says ``RANDOM``.
    """
    if weights_path is not None:
        weights_path = Path(weights_path).expanduser()
        state = weights_registry.load_state_dict(WEIGHTS_NAME, path=weights_path)
        used_path: Path | None = weights_path
    else:
        try:
            state = weights_registry.load_state_dict(WEIGHTS_NAME)
        except WeightsUnavailableError:
            if not allow_random:
                raise
            return random_inception(seed, device)  # warns loudly and records RANDOM
        used_path = weights_registry.weights_path(WEIGHTS_NAME)
    try:
        net = _InceptionV3(state, seed=seed)
    except RuntimeError as exc:  # wrong keys or shapes: not an Inception state dict
        raise WeightsUnavailableError(
            f"{used_path}: not a torch-fidelity FID Inception state dict ({str(exc).splitlines()[0]} ...)") from None
    model = InceptionFeatures(net, _protocol(weights_registry.sha256_file(used_path), str(used_path), None))
    return model if device is None else model.to(device)


def images_or_features(inception, imgs: torch.Tensor | None, features: torch.Tensor | None,
                       value_range: tuple[float, float] | None) -> torch.Tensor:
    """The Inception features of ``imgs``, or ``features`` as given (exactly one of the two)."""
    if (imgs is None) == (features is None):
        raise ValueError("give either images or features")
    if features is not None:
        return features
    if isinstance(inception, InceptionFeatures) or getattr(inception, "takes_uint8", False):  # custom: as they are
        imgs = to_uint8(imgs, value_range)
    return inception(imgs)

"""Paired image + label-map transforms.

Random parameters are drawn once per sample and applied to both the image and its mask. Masks are resized
with NEAREST and never normalised; a horizontal flip also swaps left/right labels through the schema's
``flip_permutation``. Images come out as float tensors in [0, 1] (style model, VGG) or [-1, 1] (GAN).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from genkit.data.schemas import LabelSchema
from genkit.core.tensors import pil_to_tensor


VALUE_RANGES = ("unit", "symmetric")  # image tensors in [0, 1] or [-1, 1]


def check_value_range(value_range: str, what: str = "value_range") -> str:
    if value_range not in VALUE_RANGES:
        raise ValueError(f"{what} must be 'unit' ([0, 1]) or 'symmetric' ([-1, 1]), got {value_range!r}")
    return value_range


def range_to_unit(x: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images in ``value_range`` (see :data:`VALUE_RANGES`) -> [0, 1]."""
    return to_unit(x) if value_range == "symmetric" else x


def to_symmetric(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]"""
    return x * 2.0 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]"""
    return (x + 1.0) * 0.5


def resize_image(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resize to ``(width, height)`` or to a square ``size`` with bicubic filtering."""
    wh = (size, size) if isinstance(size, int) else tuple(size)
    return img if img.size == wh else img.resize(wh, Image.BICUBIC)


def center_crop_resize(img: Image.Image, size: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The largest centred square of ``img``, resized to ``size`` (bicubic); returns it and its crop box."""
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    box = (left, top, left + s, top + s)
    return resize_image(img.crop(box), size), box


def resize_labels(labels: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    wh = (size, size) if isinstance(size, int) else tuple(size)
    if labels.shape[::-1] == wh:
        return labels
    return np.asarray(Image.fromarray(labels.astype(np.uint8), mode="L").resize(wh, Image.NEAREST), dtype=np.int64)


def flip_labels(labels: torch.Tensor | np.ndarray, schema: LabelSchema):
    """Horizontally flip a label map and swap its left/right classes."""
    lut = schema.flip_permutation()
    if isinstance(labels, torch.Tensor):
        return torch.as_tensor(lut, device=labels.device)[labels.flip(-1)]
    return lut[np.ascontiguousarray(labels[..., ::-1])]


@dataclass
class PairedTransform:
    """Resize (+ optional random scale/crop jitter and horizontal flip) applied identically to image and mask.

    ``value_range``: ``"unit"`` -> [0, 1], ``"symmetric"`` -> [-1, 1].
    """

    size: int
    schema: LabelSchema
    hflip: bool = False
    scale_jitter: float = 0.0  # e.g. 0.1: resize to size*(1..1.1) then random-crop back to size
    value_range: str = "unit"

    def __post_init__(self):
        check_value_range(self.value_range)

    def __call__(self, image: Image.Image, labels: np.ndarray, rng: random.Random | None = None,
                 *extra_images: Image.Image):
        """``(image, mask)``, followed by each of ``extra_images`` (same size as ``image``, e.g. a synthetic face's
        true background) with the same resize, crop, flip and value range."""
        rng = rng or random
        size = self.size
        big = size
        if self.scale_jitter > 0:
            big = int(round(size * (1 + rng.uniform(0, self.scale_jitter))))
        images = [resize_image(im, big) for im in (image, *extra_images)]
        labels = resize_labels(labels, big)
        if big > size:
            x0, y0 = rng.randint(0, big - size), rng.randint(0, big - size)
            images = [im.crop((x0, y0, x0 + size, y0 + size)) for im in images]
            labels = labels[y0:y0 + size, x0:x0 + size]
        xs = [pil_to_tensor(im) for im in images]
        m = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
        if self.hflip and rng.random() < 0.5:
            xs = [x.flip(-1) for x in xs]
            m = flip_labels(m, self.schema)
        if self.value_range == "symmetric":
            xs = [to_symmetric(x) for x in xs]
        return (xs[0], m, *xs[1:])


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) long -> (B, C, H, W) float."""
    return F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()

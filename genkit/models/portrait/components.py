"""Face components from a label map: regions, centres, crops and the placement of feature maps.

Paper (A) embeds five components separately: the two eyes and the mouth as fixed-size crops around their
centres (32x48 and 80x144 at 256 px, scaled with the resolution), skin (+ brows + nose) and hair as the whole
image masked to their region. Components are declared as data (class *names*), resolved against a label schema
once, so a schema without e.g. ``inner_mouth`` is a clear error at construction, not a wrong index later.

Robustness: a crop component's centre is the centroid of its *largest connected part* (8-connected), so stray
pixels of a parser's mask do not drag it; a component whose largest part is smaller than its minimum area
(closed eyes, no mouth, hair cropped away, a speck) is absent: it gets a default centre (so crops and placements
stay well defined), ``presence = False`` (so its code is zeroed and its feature map is not placed). Crops and
placements that cross the border are zero-padded. The mouth crop is masked to the mouth labels (the skin around
the lips belongs to the skin component).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from genkit.data.schemas import LabelSchema, get_schema
from genkit.core.errors import ConfigError

REFERENCE_SIZE = 256
FEATURE_STRIDE = 4  # the mask encoder's two stride-2 convs


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    classes: tuple[str, ...]
    crop: tuple[int, int] | None = None  # (height, width) at 256 px; None = whole image masked to the region
    default_centre: tuple[float, float] | None = None  # (y, x) as fractions of the image, for absent components
    min_area: int = 64  # pixels at 256 px (scaled with the image area, at least 2) for the component to be present
    masked_crop: bool = False  # crop components: zero the crop outside the component's labels

    @property
    def is_crop(self) -> bool:
        return self.crop is not None


PORTRAIT_COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec("left_eye", ("left_eye",), (32, 48), (0.45, 0.375), min_area=48),
    ComponentSpec("right_eye", ("right_eye",), (32, 48), (0.45, 0.625), min_area=48),
    ComponentSpec("mouth", ("upper_lip", "inner_mouth", "lower_lip"), (80, 144), (0.72, 0.5), min_area=96,
                  masked_crop=True),
    ComponentSpec("skin", ("skin", "left_brow", "right_brow", "nose")),
    ComponentSpec("hair", ("hair",)),
)
COMPONENT_NAMES = tuple(c.name for c in PORTRAIT_COMPONENTS)
BACKGROUND = "background"


def scaled_crop(size_at_256: tuple[int, int], image_size: int, multiple: int = FEATURE_STRIDE) -> tuple[int, int]:
    """A crop size scaled to ``image_size``, rounded to a multiple of the feature stride (at least one cell)."""
    return tuple(max(multiple, int(round(s * image_size / REFERENCE_SIZE / multiple)) * multiple)
                 for s in size_at_256)  # type: ignore[return-value]


class ComponentLayout:
    """Resolves the components against a schema and an image size; all the geometry lives here.

    Centres are ``(B, 2)`` float tensors ``(y, x)`` in pixels of the full image.
    """

    def __init__(self, schema: LabelSchema | str = "helen11", image_size: int = 256,
                 components: tuple[ComponentSpec, ...] = PORTRAIT_COMPONENTS):
        self.schema = get_schema(schema)
        if image_size % (FEATURE_STRIDE * 4) or image_size < 16:
            raise ConfigError(f"image_size must be a multiple of {FEATURE_STRIDE * 4} and >= 16, got {image_size}")
        self.image_size = int(image_size)
        self.components = tuple(components)
        self.names = tuple(c.name for c in self.components)
        self.labels: dict[str, tuple[int, ...]] = {}
        for c in self.components:
            try:
                self.labels[c.name] = tuple(self.schema.index(n) for n in c.classes)
            except KeyError as exc:
                raise ConfigError(f"component {c.name!r} needs class {exc.args[0]}") from None
        try:
            self.background_label = self.schema.index(BACKGROUND)
        except KeyError:
            raise ConfigError(f"schema {self.schema.name!r} has no {BACKGROUND!r} class") from None
        self.crop_size = {c.name: scaled_crop(c.crop, image_size) for c in self.components if c.is_crop}
        self.grid_size = image_size // FEATURE_STRIDE
        # a component (its largest connected part, for crops) must cover this many pixels to count as present
        self.min_area = {c.name: max(2, round(c.min_area * (image_size / REFERENCE_SIZE) ** 2))
                         for c in self.components}
        self.specs = {c.name: c for c in self.components}

    # ---------------------------------------------------------------------------------------------- sizes
    def input_size(self, name: str) -> tuple[int, int]:
        """Spatial size of the encoder input: the crop, or the full image."""
        return self.crop_size.get(name, (self.image_size, self.image_size))

    def feature_size(self, name: str) -> tuple[int, int]:
        """Spatial size of the decoded feature map: crop / stride for crops, the full grid otherwise."""
        h, w = self.input_size(name)
        return h // FEATURE_STRIDE, w // FEATURE_STRIDE

    # --------------------------------------------------------------------------------------------- regions
    def check_mask(self, mask: torch.Tensor) -> None:
        if mask.dim() != 3:
            raise ValueError(f"mask must be (B, H, W) labels, got shape {tuple(mask.shape)}")
        if mask.dtype.is_floating_point:
            raise ValueError(f"mask must hold integer labels, got {mask.dtype}")
        lo, hi = int(mask.min()), int(mask.max())
        if lo < 0 or hi >= self.schema.num_classes:
            raise ValueError(f"mask labels span {lo}..{hi}, outside schema {self.schema.name!r} "
                             f"(0..{self.schema.num_classes - 1})")

    def region(self, mask: torch.Tensor, name: str) -> torch.Tensor:
        """(B, H, W) labels -> (B, 1, H, W) float indicator of component ``name``."""
        if name == BACKGROUND:
            return (mask == self.background_label).unsqueeze(1).float()
        labels = self.labels[name]
        r = torch.zeros_like(mask, dtype=torch.bool)
        for lab in labels:
            r = r | (mask == lab)  # not in place: ONNX export traces this
        return r.unsqueeze(1).float()

    def background(self, mask: torch.Tensor) -> torch.Tensor:
        return self.region(mask, BACKGROUND)

    def presence(self, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,) bool per component: does the mask show it (its largest connected part, for crop components, or
        its whole region otherwise, covers at least the component's minimum area)?"""
        parts = self.crop_parts(mask)
        out = {}
        for n in self.names:
            if n in parts:
                out[n] = parts[n][1] >= self.min_area[n]
            else:
                out[n] = self.region(mask, n).flatten(1).sum(1) >= self.min_area[n]
        return out

    def crop_parts(self, mask: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per crop component: the centroid (B, 2) ``(y, x)`` and the area (B,) of its largest 8-connected part."""
        from scipy.ndimage import center_of_mass, label

        labels = mask.detach().cpu().numpy()
        eight = np.ones((3, 3), dtype=bool)
        out = {}
        for name in self.crop_size:
            centres = np.zeros((labels.shape[0], 2), dtype=np.float64)
            areas = np.zeros(labels.shape[0], dtype=np.int64)
            region = np.isin(labels, self.labels[name])
            for b in range(labels.shape[0]):
                if not region[b].any():
                    continue
                parts, n = label(region[b], structure=eight)
                sizes = np.bincount(parts.ravel(), minlength=n + 1)[1:]
                k = int(sizes.argmax()) + 1
                centres[b] = center_of_mass(parts == k)
                areas[b] = sizes[k - 1]
            out[name] = (torch.from_numpy(centres + 0.5).float().to(mask.device),
                         torch.from_numpy(areas).to(mask.device))
        return out

    def centres(self, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Centre (y, x) of each crop component: the centroid of its largest connected part; the default centre
        where the component is absent."""
        b, h, w = mask.shape
        out = {}
        for name, (centre, area) in self.crop_parts(mask).items():
            dy, dx = self.specs[name].default_centre or (0.5, 0.5)
            default = torch.tensor([dy * h, dx * w], dtype=torch.float32, device=mask.device).expand(b, 2)
            out[name] = torch.where((area >= self.min_area[name]).view(-1, 1), centre, default)
        return out

    # ------------------------------------------------------------------------------------ crops / placement
    @staticmethod
    def top_left(centre: torch.Tensor, size: tuple[int, int], scale: float = 1.0) -> list[tuple[int, int]]:
        """Integer top-left corners of ``size`` windows centred at ``centre * scale``."""
        c = centre.detach().float().cpu() * scale
        return [(int(round(float(y) - size[0] / 2)), int(round(float(x) - size[1] / 2))) for y, x in c]

    @staticmethod
    def crop(images: torch.Tensor, centre: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, h, w) windows around ``centre``; zero padding outside the image."""
        return crop_at(images, ComponentLayout.top_left(centre, size), size)

    def place(self, features: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Paste (B, C, fh, fw) feature maps onto a zero (B, C, grid, grid) canvas, centred at ``centre``.

        ``centre`` is in image pixels (the *target* mask's component centres); the canvas is the mask encoder's
        grid (stride 4). Parts falling outside the canvas are cut off. Differentiable w.r.t. ``features``.
        """
        fh, fw = features.shape[-2:]
        g = self.grid_size
        corners = self.top_left(centre, (fh, fw), scale=1.0 / FEATURE_STRIDE)
        # the canvas is the window of the feature map that starts at (-y0, -x0)
        return torch.stack([window(feat, -y0, -x0, (g, g)) for feat, (y0, x0) in zip(features, corners)])

    def extract(self, image: torch.Tensor, mask: torch.Tensor, centres: dict[str, torch.Tensor] | None = None
                ) -> dict[str, torch.Tensor]:
        """Encoder inputs: crops around the centres (eyes, mouth) and region-masked full images (skin, hair)."""
        return self.extract_with_regions(image, mask, centres)[0]

    def extract_with_regions(self, image: torch.Tensor, mask: torch.Tensor,
                             centres: dict[str, torch.Tensor] | None = None
                             ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The encoder inputs and, for each, the (B, K, h, w) indicators of the component's K classes in it."""
        centres = self.centres(mask) if centres is None else centres
        inputs, regions = {}, {}
        for name in self.names:
            parts = torch.stack([mask == lab for lab in self.labels[name]], 1).to(image.dtype)
            region = parts.amax(1, keepdim=True)
            if name in self.crop_size:
                inputs[name] = self.crop(image, centres[name], self.crop_size[name])
                regions[name] = self.crop(parts, centres[name], self.crop_size[name])
                if self.specs[name].masked_crop:
                    inputs[name] = inputs[name] * regions[name].amax(1, keepdim=True)
            else:
                inputs[name] = image * region
                regions[name] = parts
        return inputs, regions


def window(img: torch.Tensor, top: int, left: int, size: tuple[int, int]) -> torch.Tensor:
    """``out[..., i, j] = img[..., top + i, left + j]`` where that is inside ``img``, else 0."""
    h, w = img.shape[-2:]
    oh, ow = size
    y0, y1 = min(max(top, 0), h), min(max(top + oh, 0), h)
    x0, x1 = min(max(left, 0), w), min(max(left + ow, 0), w)
    part = img[..., y0:y1, x0:x1]
    pad_top = min(max(y0 - top, 0), oh)
    pad_left = min(max(x0 - left, 0), ow)
    return F.pad(part, (pad_left, ow - pad_left - (x1 - x0), pad_top, oh - pad_top - (y1 - y0)))


def crop_at(images: torch.Tensor, corners: list[tuple[int, int]], size: tuple[int, int]) -> torch.Tensor:
    return torch.stack([window(img, y0, x0, size) for img, (y0, x0) in zip(images, corners)])


def dilate(region: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary dilation of a (B, 1, H, W) indicator by a square of radius ``pixels``."""
    if pixels <= 0:
        return region
    return F.max_pool2d(region, 2 * pixels + 1, stride=1, padding=pixels)

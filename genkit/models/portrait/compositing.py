"""Keeping the photo: the generated face is blended into the photo only where an edit can change it.

For a user, "the background is kept" means the photo's own pixels. The *edit region* is the union of the old and
new masks' non-background labels (a face made smaller or hair removed uncovers background that the generator must
fill). Around it the region grows by ``grow`` pixels (parsers' masks are not pixel-exact) and a ``feather`` band
blends linearly into the photo. Beyond that band the output **is** the photo: :func:`paste` copies those pixels
(``torch.where``), so the guarantee is structural, not learned.

Distances are Chebyshev (square dilations), computed by repeated 3x3 max-pooling, so they run on any device.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def scaled_pixels(pixels_at_256: float, image_size: int) -> int:
    """A pixel distance given at 256 px, at ``image_size``."""
    return max(0, int(round(pixels_at_256 * image_size / 256)))


def face_union(masks: list[torch.Tensor], background_label: int = 0) -> torch.Tensor:
    """(B, 1, H, W) float: pixels that are not background in at least one of the (B, H, W) label maps."""
    out = torch.zeros_like(masks[0], dtype=torch.bool)
    for m in masks:
        out |= m != background_label
    return out.unsqueeze(1).float()


def chebyshev_distance(region: torch.Tensor, max_distance: int) -> torch.Tensor:
    """Distance (in pixels, square neighbourhoods) of every pixel to ``region`` (B, 1, H, W) in {0, 1}:
    0 on the region, ``max_distance + 1`` for everything farther than ``max_distance``."""
    covered = region.float()
    count = covered.clone()
    for _ in range(max_distance):
        covered = F.max_pool2d(covered, 3, stride=1, padding=1)
        count = count + covered
    return (max_distance + 1) - count


def feathered_alpha(distance: torch.Tensor, grow: torch.Tensor | int, feather: int) -> torch.Tensor:
    """1 within ``grow`` pixels of the region, then linearly down to exactly 0 at ``grow + feather + 1``.

    ``grow`` may be a (B,) tensor (a different radius per sample, in training)."""
    if isinstance(grow, torch.Tensor):
        grow = grow.to(distance).view(-1, 1, 1, 1)
    return ((grow + feather + 1.0 - distance) / (feather + 1.0)).clamp(0.0, 1.0)


def edit_alpha(masks: list[torch.Tensor], grow: int, feather: int, background_label: int = 0) -> torch.Tensor:
    """The paste weight (B, 1, H, W) for an edit between label maps ``masks`` (e.g. the photo's and the edited)."""
    dist = chebyshev_distance(face_union(masks, background_label), grow + feather + 1)
    return feathered_alpha(dist, grow, feather)


def paste(generated: torch.Tensor, photo: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha * generated + (1 - alpha) * photo``, and exactly ``photo`` wherever ``alpha`` is 0."""
    alpha = alpha.to(generated.dtype)
    blend = photo + alpha * (generated - photo)
    return torch.where(alpha > 0, blend, photo.to(blend.dtype))


# ------------------------------------------------------------------------ edits at the photo's own resolution
def changed_region(before: torch.Tensor, after: torch.Tensor, component_labels: list[int] | tuple[int, ...] = (),
                   background_label: int = 0, whole_face: bool = False) -> torch.Tensor:
    """(H, W) bool: the pixels an edit changes, on full-resolution label maps ``before`` (the photo's) and
    ``after`` (the edited layout): those whose label changes, plus both maps' pixels of ``component_labels`` (the
    classes of the components whose appearance changes). ``whole_face``: every non-background pixel of either."""
    if whole_face:
        return (before != background_label) | (after != background_label)
    region = before != after
    for lab in component_labels:
        region |= (before == lab) | (after == lab)
    return region


def distance_to(region: torch.Tensor) -> torch.Tensor:
    """(H, W) float: the Euclidean distance in pixels of every pixel to the nearest pixel of ``region`` (H, W) bool
    (0 on it). Round, not square: a feather band built on it has no staircase."""
    from scipy.ndimage import distance_transform_edt

    if not bool(region.any()):
        return torch.full(region.shape, float("inf"))
    dist = distance_transform_edt(~region.cpu().numpy())
    return torch.from_numpy(dist).float().to(region.device)


def ramp(distance: torch.Tensor, grow: float, feather: float) -> torch.Tensor:
    """1 within ``grow`` pixels, then a smooth (cosine) fall to exactly 0 at ``grow + feather`` and beyond."""
    t = ((distance - grow) / max(feather, 1e-6)).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(torch.pi * t))


def detail_blend(generated: torch.Tensor, photo: torch.Tensor, alpha: torch.Tensor, detail: torch.Tensor,
                 sigma: float) -> torch.Tensor:
    """Blend ``generated`` into ``photo`` (both (B, 3, H, W) at the photo's resolution) by frequency.

    The low frequencies of the change (a Gaussian of ``sigma`` px: about one model pixel) follow ``alpha`` (the grown,
    feathered region); its high frequencies follow ``detail`` (the changed pixels themselves). In the margin the photo
    keeps its own detail and only takes the generator's colour, so the seam shows neither a blurred band nor an edge.
    Exactly ``photo`` wherever ``alpha`` is 0."""
    from torchvision.transforms.functional import gaussian_blur

    change = generated - photo
    if sigma > 0.5:
        k = 2 * int(3 * sigma + 0.5) + 1
        low = gaussian_blur(change, [k, k], [sigma, sigma])
    else:
        low = change
    detail = torch.minimum(detail, alpha)
    out = (photo + alpha * low + detail * (change - low)).clamp(0, 1)
    return torch.where(alpha > 0, out, photo)


def is_greyscale(photo: torch.Tensor) -> bool:
    """Whether a photo (B, 3, H, W) has three equal channels everywhere (a greyscale image read as RGB)."""
    return bool(torch.equal(photo[:, 0], photo[:, 1]) and torch.equal(photo[:, 1], photo[:, 2]))


def greyscale(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> its Rec. 601 luminance on three equal channels (what a greyscale photo shows of colour)."""
    from torchvision.transforms.functional import rgb_to_grayscale

    return rgb_to_grayscale(image, num_output_channels=3)

"""Validation metrics of the portrait GAN, each optional and guarded.

* LPIPS(reconstruction, real) through :class:`genkit.metrics.lpips.LPIPSMetric`;
* FID(transfers, real) through :class:`genkit.metrics.fid.FrechetInceptionDistance` (off by default: a few
  hundred validation images are needed for a meaningful number);
* mask consistency: the face parser's mIoU / pixel accuracy of generated images (reconstructions and transfers)
  against the target masks, when a parser is configured.

A metric whose pretrained weights are missing (and ``allow_random`` is off) is skipped with one warning instead
of stopping training; L1 is always logged by the module itself.

Below them, measurements of edits on faces whose components are known (transfer direction, hair removal against
the true background, code statistics of VAE embeddings, prior samples for the diversity).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from genkit.core.errors import GenkitError
from genkit.metrics.mask_consistency import MaskConsistency
from genkit.models.portrait.components import dilate
from genkit.models.portrait.encoders import ComponentCodes

log = logging.getLogger(__name__)


class PortraitMetrics(nn.Module):
    def __init__(self, parser: nn.Module | None = None, lpips: bool = True, fid: bool = False,
                 allow_random: bool = False, num_classes: int = 11, fid_protocol: str = "torch-fidelity"):
        super().__init__()
        self.lpips = _try("LPIPS", lambda: _lpips(allow_random)) if lpips else None
        self.fid = _try("FID", lambda: _fid(allow_random, fid_protocol)) if fid else None
        self.mask = (MaskConsistency(parser, num_classes, input_range="symmetric") if parser is not None else None)
        self._fid_count = 0
        self._mask_count = 0

    @torch.no_grad()
    def update(self, real: torch.Tensor, recon: torch.Tensor, transfer: torch.Tensor | None, mask: torch.Tensor
               ) -> None:
        if self.lpips is not None:
            self.lpips.update(recon.float().clamp(-1, 1), real.float())
        if self.fid is not None:
            self.fid.update(real.float().clamp(-1, 1), real=True)
            self.fid.update((transfer if transfer is not None else recon).float().clamp(-1, 1), real=False)
            self._fid_count += real.shape[0]
        if self.mask is not None:
            self.mask.update(recon.float(), mask)
            if transfer is not None:
                self.mask.update(transfer.float(), mask)
            self._mask_count += real.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        # every process must take the same branches: the metrics' compute() syncs states across processes
        lpips_n, fid_n, mask_n = _global_counts(
            int(self.lpips.total) if self.lpips is not None else 0, self._fid_count, self._mask_count)
        out: dict[str, torch.Tensor] = {}
        if self.lpips is not None and lpips_n > 0:
            out["lpips"] = self.lpips.compute().float()
        if self.fid is not None and fid_n >= 2:
            try:
                out["fid"] = self.fid.compute().float()
            except (GenkitError, ValueError, RuntimeError) as exc:
                log.warning("portrait: FID not computed (%s)", exc)
        if self.mask is not None and mask_n > 0:
            scores = self.mask.compute()
            out.update(mask_miou=scores["miou"].float(), mask_pixel_acc=scores["pixel_acc"].float())
        return out

    def reset(self) -> None:
        for m in (self.lpips, self.fid, self.mask):
            if m is not None:
                m.reset()
        self._fid_count = 0
        self._mask_count = 0


def _global_counts(*counts: int) -> list[int]:
    """Sample counts summed over all processes (as they are when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(counts)
    t = torch.tensor(counts, dtype=torch.long)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return [int(v) for v in t.cpu()]


def _lpips(allow_random: bool):
    from genkit.metrics.lpips import LPIPSMetric

    return LPIPSMetric(net="alex", allow_random=allow_random, sync_on_compute=True)


def _fid(allow_random: bool, protocol: str = "torch-fidelity"):
    from genkit.metrics.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(allow_random=allow_random, value_range=(-1.0, 1.0), protocol=protocol)


def _try(name: str, build):
    try:
        return build()
    except (GenkitError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("portrait: validation %s disabled (%s)", name, first)
        return None


# --------------------------------------------------------------------------------- edit measurements
# Measurements of what an edit does, on faces whose components are known (synthetic faces): used by the tests and
# by benchmarks/portrait.py. Images in [-1, 1], masks (B, H, W), one generator in eval mode.

TRANSFER_GROUPS = {"eyes": ("left_eye", "right_eye"), "mouth": ("mouth",), "skin": ("skin",), "hair": ("hair",)}


def _group_region(layout, mask: torch.Tensor, names) -> torch.Tensor:
    return torch.stack([layout.region(mask, n) for n in names]).amax(0)


def synthetic_transfer_set(n: int, size: int, seed: int = 7_000_000,
                           groups: dict[str, tuple[str, ...]] | None = None) -> dict[str, torch.Tensor]:
    """``n`` synthetic faces (``image``, ``mask``, ``background``; images in [-1, 1]), their donors (``perm``: face
    ``i`` takes from face ``perm[i]``), and the targets drawn with their donor's components (``expected[group]`` for
    each group and ``expected["a+b"]`` for each pair of groups): what a perfect transfer gives, rendered by the face
    generator itself."""
    from genkit.data.synthetic import COMPONENT_APPEARANCE, render_synthetic_face
    from genkit.data.synthetic import synthetic_appearance as synthetic_appearance_of

    groups = groups or TRANSFER_GROUPS
    seeds = [np.random.SeedSequence([seed, i]) for i in range(n)]
    rng = lambda i: np.random.default_rng(seeds[i])  # noqa: E731
    perm = torch.roll(torch.arange(n), 1)

    def as_tensor(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0

    faces = [render_synthetic_face(size, rng(i)) for i in range(n)]
    out = {"image": torch.stack([as_tensor(f[0]) for f in faces]),
           "mask": torch.stack([torch.from_numpy(f[1]) for f in faces]),
           "background": torch.stack([as_tensor(f[2]) for f in faces]), "perm": perm, "expected": {}}
    names = list(groups)
    combos = [[g] for g in names] + [[a, b] for i, a in enumerate(names) for b in names[i + 1:]]
    donors = [synthetic_appearance_of(size, rng(int(perm[i]))) for i in range(n)]
    for combo in combos:
        keys = [k for g in combo for k in COMPONENT_APPEARANCE[g]]
        out["expected"]["+".join(combo)] = torch.stack([
            as_tensor(render_synthetic_face(size, rng(i), {k: donors[i][k] for k in keys})[0]) for i in range(n)])
    return out


def _pair(a: str, b: str, order: list[str]) -> str:
    return "+".join(sorted((a, b), key=order.index))


@torch.no_grad()
def transfer_direction(generator, image: torch.Tensor, mask: torch.Tensor, perm: torch.Tensor,
                       expected: dict[str, torch.Tensor], groups: dict[str, tuple[str, ...]] | None = None,
                       min_gap: float = 0.1) -> dict:
    """For each component group, transfer it from ``image[perm]`` (the donors) into each target, and compare the
    colour statistics (RGB mean and spread) inside components of the result with what perfect edits give
    (``expected``, from :func:`synthetic_transfer_set`). Both candidates of each comparison share the target's
    layout, so thin parts stay fair (lip pixels share the blur with the skin around them).

    * ``toward_donor``: the fraction of pairs where the transferred component is closer to the donor's appearance
      (``expected[group]``) than to the target's own (``image``);
    * ``others_stay``: the fraction of (pair, other group) where the other component is closer to the perfect
      transfer of ``group`` alone than to a transfer that also took that other component;
    * ``pairs``: how many pairs count (both faces show the component; the two candidates differ by > ``min_gap``).
    """
    from genkit.models.portrait.losses import colour_stats

    groups = groups or TRANSFER_GROUPS
    order = list(groups)
    lay = generator.layout
    perm = perm.to(image.device)
    expected = {k: v.to(image) for k, v in expected.items()}
    codes = generator.encode(image, mask)
    donors = codes.index(perm)
    region = {g: dilate(_group_region(lay, mask, names), 1) * (1 - lay.background(mask)) for g, names in groups.items()}
    present = {g: torch.stack([codes.presence[n] & codes.presence[n][perm] for n in names]).all(0)
               for g, names in groups.items()}

    def closer(result, g, near, far):
        """(closer to ``near``, the two candidates differ enough), inside group ``g``."""
        s, a, b = (colour_stats(x, region[g]) for x in (result, near, far))
        return (s - a).norm(dim=1) < (s - b).norm(dim=1), (a - b).norm(dim=1) > min_gap

    out = {}
    for g, names in groups.items():
        result = generator.render(mask, codes.mix(donors, {n: True for n in names}), image)["image"]
        toward, differ = closer(result, g, expected[g], image)
        valid = present[g] & differ
        stay = []
        for other in groups:
            if other != g:
                kept, ok = closer(result, other, expected[g], expected[_pair(g, other, order)])
                stay.append(kept[present[g] & present[other] & ok])
        stay_all = torch.cat(stay) if stay else torch.zeros(0, dtype=torch.bool)
        out[g] = {"toward_donor": float(toward[valid].float().mean()) if valid.any() else float("nan"),
                  "others_stay": float(stay_all.float().mean()) if stay_all.numel() else float("nan"),
                  "pairs": int(valid.sum())}
    return out


@torch.no_grad()
def hair_removal_error(generator, image: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> dict:
    """Remove the hair from each mask and compare what the generator puts where the hair was with the true
    background (mean absolute error on the [0, 1] scale); ``recon_face`` is the reconstruction error on the face,
    for scale; ``far_max`` the largest difference from the photo outside the paste band (0 by construction)."""
    lay = generator.layout
    hair = lay.region(mask, "hair")
    bald = torch.where(hair[:, 0].bool(), lay.background_label, mask)
    codes = generator.encode(image, mask)
    out = generator.render(bald, codes, image, mask)
    err = (out["image"] - background).abs().mean(1, keepdim=True) / 2.0
    recon = generator(image, mask)
    face = 1.0 - lay.background(mask)
    recon_err = (recon - image).abs().mean(1, keepdim=True) / 2.0
    far = (out["alpha"] == 0).float()
    return {"hair_vs_true_background": float((err * hair).sum() / hair.sum().clamp_min(1)),
            "photo_in_hair_region": float(((image - background).abs().mean(1, keepdim=True) / 2 * hair).sum()
                                          / hair.sum().clamp_min(1)),
            "recon_face": float((recon_err * face).sum() / face.sum().clamp_min(1)),
            "far_max": float(((out["image"] - image).abs() * far).amax()) if far.any() else 0.0,
            "far_pixels": int(far.sum())}


@torch.no_grad()
def code_statistics(generator, image: torch.Tensor, mask: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per component of a VAE embedding: ``moment`` E[mu^2 + sigma^2] and ``kl`` (per latent dimension)."""
    from genkit.models.portrait.losses import kl_divergence, second_moment

    if not generator.variational:
        return {}
    codes = generator.encode(image, mask)
    return {n: {"moment": float(second_moment(codes.mu[n], codes.logvar[n], codes.presence[n])),
                "kl": float(kl_divergence(codes.mu[n], codes.logvar[n], codes.presence[n]))} for n in codes.names}


@torch.no_grad()
def prior_samples(generator, image: torch.Tensor, mask: torch.Tensor, component: str, n: int, seed: int = 0,
                  temperature: float = 1.0) -> torch.Tensor:
    """(B, n, 3, H, W): each face with ``n`` prior draws of ``component`` (the others its own), pasted."""
    g = torch.Generator().manual_seed(int(seed))
    codes = generator.encode(image, mask)
    out = []
    for _ in range(n):
        z = torch.randn(image.shape[0], generator.embedding.latent_dim, generator=g).to(image) * temperature
        c = ComponentCodes(dict(codes.z), dict(codes.mu), dict(codes.logvar), dict(codes.presence))
        c.z[component] = z * codes.presence[component].to(z).view(-1, 1)
        out.append(generator.render(mask, c, image)["image"])
    return torch.stack(out, 1)


def local_std(image: torch.Tensor, window: int = 7) -> torch.Tensor:
    """(B, 1, H, W): the standard deviation of each pixel's ``window`` neighbourhood, averaged over channels."""
    pad = window // 2
    mean = torch.nn.functional.avg_pool2d(image, window, 1, pad, count_include_pad=False)
    sq = torch.nn.functional.avg_pool2d(image * image, window, 1, pad, count_include_pad=False)
    return (sq - mean * mean).clamp_min(0).sqrt().mean(1, keepdim=True)


def fill_statistics(image: torch.Tensor, filled: torch.Tensor, ring: torch.Tensor) -> dict[str, float]:
    """How a filled region (where the hair was, on a photo with no true background) matches its surroundings.

    ``image`` (1, 3, H, W) in [0, 1]; ``filled`` and ``ring`` (H, W) bool. Returns the largest difference of the
    channel means (``colour_gap``; 0.05 is a just-visible shift) and the ratio of the mean local standard deviation
    (texture) inside the fill to that in the ring (``texture_ratio``; 1 = the same texture, < 1 = flatter)."""
    std = local_std(image)[0, 0]
    inside, around = image[0][:, filled], image[0][:, ring]
    gap = (inside.mean(1) - around.mean(1)).abs().max()
    return {"colour_gap": float(gap), "texture_ratio": float(std[filled].mean() / std[ring].mean().clamp_min(1e-6)),
            "filled_pixels": int(filled.sum()), "ring_pixels": int(ring.sum())}


@torch.no_grad()
def transfer_mask_consistency(generator, parser: nn.Module, image: torch.Tensor, mask: torch.Tensor,
                              perm: torch.Tensor) -> dict[str, float]:
    """Does a transfer respect the layout? Every component of each face taken from ``image[perm]``, drawn for the
    face's own mask; a frozen ``parser`` (images in [0, 1] -> logits) must recover that mask: mIoU and pixel
    accuracy (as the parsing loss asks)."""
    codes = generator.encode(image, mask)
    result = generator.render(mask, codes.mix(codes.index(perm.to(image.device)),
                                              {n: True for n in generator.component_names}), image)["image"]
    metric = MaskConsistency(parser, input_range="symmetric").to(image.device)
    metric.update(result, mask)
    return {k: float(v) for k, v in metric.compute().items() if torch.as_tensor(v).numel() == 1}

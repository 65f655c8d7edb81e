"""Validation metrics of the portrait GAN, each optional and guarded.

* LPIPS(reconstruction, real) through :class:`genkit.metrics.lpips.LPIPSMetric`;
* FID(transfers, real) through :class:`genkit.metrics.fid.FrechetInceptionDistance` (off by default: a few
  hundred validation images are needed for a meaningful number);
* mask consistency: the face parser's mIoU / pixel accuracy of generated images (reconstructions and transfers)
  against the target masks, when a parser is configured.

A metric whose pretrained weights are missing (and ``allow_random`` is off) is skipped with one warning instead
of stopping training; L1 is always logged by the module itself.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from genkit.errors import GenkitError
from genkit.metrics.mask_consistency import MaskConsistency

log = logging.getLogger(__name__)


class PortraitMetrics(nn.Module):
    def __init__(self, parser: nn.Module | None = None, lpips: bool = True, fid: bool = False,
                 allow_random: bool = False, num_classes: int = 11):
        super().__init__()
        self.lpips = _try("LPIPS", lambda: _lpips(allow_random)) if lpips else None
        self.fid = _try("FID", lambda: _fid(allow_random)) if fid else None
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


def _fid(allow_random: bool):
    from genkit.metrics.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(allow_random=allow_random, value_range=(-1.0, 1.0))


def _try(name: str, build):
    try:
        return build()
    except (GenkitError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("portrait: validation %s disabled (%s)", name, first)
        return None

"""Voting: rebuild a target feature map from the full-dimensional style features of the assigned patches.

Content position ``c`` matched to style position ``s`` contributes the style patch around ``s`` to the target
patch around ``c``; every target position is the average of the contributions it receives (parts of a style
patch that fall outside the style map contribute nothing; the official release's ``avg_vote``). With 1x1 patches
the target is exactly the style features rearranged by the assignment.

Target ``t`` receives, for every patch offset ``o``, the style feature at ``a(t - o) + o``: one index per offset,
so the vote is a sum of gathered rows, computed by ``F.embedding_bag`` (a fused gather-and-sum, several times
faster than materialising the gathered patches).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def source_indices(assign: torch.Tensor, content_hw: tuple[int, int], style_hw: tuple[int, int],
                   patch_size: int, invalid: int = -1) -> torch.Tensor:
    """``(Hc*Wc, p*p)`` flat style index voted into each target position per patch offset (``invalid``: none)."""
    hc, wc = content_hw
    hs, ws = style_hw
    r = patch_size // 2
    a = assign.view(hc, wc)
    far = -(1 << 20)  # outside the content map: lands outside the style map for every offset
    ay = F.pad(a // ws, (r, r, r, r), value=far)
    ax = F.pad(a % ws, (r, r, r, r), value=far)
    out = torch.empty(hc, wc, patch_size * patch_size, dtype=torch.long, device=assign.device)
    k = 0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # target (y, x) receives from content (y - dy, x - dx) its match shifted by (dy, dx)
            sy = ay[r - dy:r - dy + hc, r - dx:r - dx + wc] + dy
            sx = ax[r - dy:r - dy + hc, r - dx:r - dx + wc] + dx
            ok = (sy >= 0) & (sy < hs) & (sx >= 0) & (sx < ws)
            out[:, :, k] = torch.where(ok, sy * ws + sx, invalid)
            k += 1
    return out.view(hc * wc, -1)


class Voter:
    """Votes for one style map: its rows are laid out once (channels last, in blocks of ``block`` channels, so
    no intermediate is large), and the target buffer is reused by every iteration of a level."""

    def __init__(self, style: torch.Tensor, patch_size: int, block: int = 32):
        c, hs, ws = style.shape
        self.channels, self.style_hw, self.patch_size = c, (hs, ws), patch_size
        flat = style.reshape(c, -1)
        # per block: (Hs*Ws + 1, block) rows, plus a zero row that invalid offsets point to
        self.blocks = [torch.cat([flat[i:i + block].T, flat.new_zeros(1, min(block, c - i))]).contiguous()
                       for i in range(0, c, block)]
        self.pad = hs * ws
        self.out: torch.Tensor | None = None

    def __call__(self, assign: torch.Tensor, content_hw: tuple[int, int]) -> torch.Tensor:
        """The voted target (C, Hc, Wc). The same buffer is returned on every call: copy it to keep it."""
        hc, wc = content_hw
        c = self.channels
        if self.out is None or self.out.shape != (c, hc, wc):
            self.out = self.blocks[0].new_empty(c, hc, wc)
        out = self.out.view(c, -1)
        if self.patch_size == 1:
            idx, weights = assign[:, None], None
        else:
            idx = source_indices(assign, content_hw, self.style_hw, self.patch_size, invalid=self.pad)
            valid = idx != self.pad
            weights = valid / valid.sum(1, keepdim=True).clamp_min(1)  # average of the contributions received
            weights = weights.to(self.blocks[0].dtype)
        i = 0
        for rows in self.blocks:
            part = F.embedding_bag(idx, rows, mode="sum", per_sample_weights=weights)
            out[i:i + rows.shape[1]].copy_(part.T)
            i += rows.shape[1]
        return self.out


def vote(style: torch.Tensor, assign: torch.Tensor, content_hw: tuple[int, int], patch_size: int) -> torch.Tensor:
    """``style`` (C, Hs, Ws), ``assign`` (Hc*Wc,) flat style indices -> target (C, Hc, Wc)."""
    return Voter(style, patch_size)(assign, content_hw).clone()

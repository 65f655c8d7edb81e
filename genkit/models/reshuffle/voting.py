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
                   patch_size: int) -> torch.Tensor:
    """``(Hc*Wc, p*p)`` flat style index voted into each target position per patch offset (-1: none)."""
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
            out[:, :, k] = torch.where(ok, sy * ws + sx, -1)
            k += 1
    return out.view(hc * wc, -1)


class Voter:
    """Votes for one style map (its rows are laid out once, then reused by every iteration of a level)."""

    def __init__(self, style: torch.Tensor, patch_size: int):
        c, hs, ws = style.shape
        self.channels, self.style_hw, self.patch_size = c, (hs, ws), patch_size
        # (Hs*Ws + 1, C): channels last, plus a zero row that invalid offsets point to
        self.rows = torch.cat([style.reshape(c, -1).T, style.new_zeros(1, c)]).contiguous()

    def __call__(self, assign: torch.Tensor, content_hw: tuple[int, int]) -> torch.Tensor:
        hc, wc = content_hw
        c = self.channels
        if self.patch_size == 1:
            return self.rows.index_select(0, assign).T.reshape(c, hc, wc).contiguous()
        src = source_indices(assign, content_hw, self.style_hw, self.patch_size)
        valid = src >= 0
        count = valid.sum(1, keepdim=True).clamp_min(1).to(self.rows.dtype)
        idx = torch.where(valid, src, self.rows.shape[0] - 1)
        out = F.embedding_bag(idx, self.rows, mode="sum") / count
        return out.T.reshape(c, hc, wc).contiguous()


def vote(style: torch.Tensor, assign: torch.Tensor, content_hw: tuple[int, int], patch_size: int) -> torch.Tensor:
    """``style`` (C, Hs, Ws), ``assign`` (Hc*Wc,) flat style indices -> target (C, Hc, Wc)."""
    return Voter(style, patch_size)(assign, content_hw)

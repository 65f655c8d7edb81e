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
    """Votes for one style map, channel block by channel block and in row chunks of the target, so no
    intermediate is larger than ``chunk_elements`` values: a block's style rows are laid out channels-last
    (``block`` channels, plus a zero row that invalid offsets point to) when it is needed, not kept for the whole
    level, so voting holds no copy of the style map. Per target position it keeps the voted style rows (int32)
    and how many there are; the average is the sum divided by that count."""

    def __init__(self, style: torch.Tensor, patch_size: int, block: int = 32, chunk_elements: int = 1 << 22):
        c, hs, ws = style.shape
        self.style, self.channels, self.style_hw, self.patch_size = style, c, (hs, ws), patch_size
        self.block, self.chunk_elements = block, int(chunk_elements)
        self.pad = hs * ws

    def _sources(self, assign: torch.Tensor, content_hw: tuple[int, int]):
        """Per target position, the style rows voted into it (int32) and their count (None: one row each)."""
        if self.patch_size == 1:
            return assign[:, None].to(torch.int32), None
        idx = source_indices(assign, content_hw, self.style_hw, self.patch_size, invalid=self.pad)
        count = (idx != self.pad).sum(1, keepdim=True).clamp_min(1).to(self.style.dtype)
        return idx.to(torch.int32), count

    def blocks(self, assigns: list[torch.Tensor], content_hw: tuple[int, int]):
        """Yield ``(channel slice, rows slice, [(rows, channels) voted values, one per assignment])`` covering the
        target."""
        sources = [self._sources(a, content_hw) for a in assigns]
        flat = self.style.reshape(self.channels, -1)
        n, width = sources[0][0].shape
        step = max(1, self.chunk_elements // max(1, self.block * width * len(assigns)))
        for i in range(0, self.channels, self.block):
            part = flat[i:i + self.block]
            rows = torch.cat([part.T, part.new_zeros(1, part.shape[0])]).contiguous()
            for j in range(0, n, step):
                values = []
                for idx, count in sources:
                    v = F.embedding_bag(idx[j:j + step], rows, mode="sum")
                    values.append(v if count is None else v.div_(count[j:j + step]))
                yield slice(i, i + part.shape[0]), slice(j, j + step), values
            del rows

    def __call__(self, assign: torch.Tensor, content_hw: tuple[int, int]) -> torch.Tensor:
        """The voted target (C, Hc, Wc)."""
        hc, wc = content_hw
        out = self.style.new_empty(self.channels, hc * wc)
        for ch, rows, (values,) in self.blocks([assign], content_hw):
            out[ch, rows] = values.T
        return out.view(self.channels, hc, wc)

    def update(self, target: torch.Tensor, assign: torch.Tensor, weight: float,
               content: torch.Tensor | None = None, previous: torch.Tensor | None = None) -> float:
        """Blend the vote of ``assign`` into ``target`` (C, Hc, Wc) **in place**; returns its relative change
        ``||new - old|| / ||old||``.

        With ``content``: ``target <- lerp(content, voted, weight)`` (``target`` may be ``content``). Without it,
        ``target`` holds the blend for the assignment ``previous`` and becomes the blend for ``assign``:
        ``target += weight * (voted - voted_previous)``, the content's share unchanged. So a level can hold one map
        instead of the content and a blend (0.5 GB at relu2_1 for a 2048 px image), at the cost of a second vote."""
        if content is None and previous is None:
            raise ValueError("update needs the content or the previous assignment")
        c, hc, wc = target.shape
        tf = target.view(c, -1)
        cf = None if content is None else content.reshape(c, -1)
        old_norm = target.norm()  # before it is overwritten
        num = target.new_zeros(())  # on the device: one host read per call, at the end
        for ch, rows, values in self.blocks([assign] if cf is not None else [assign, previous], (hc, wc)):
            old = tf[ch, rows]  # a view of ``target``
            if cf is not None:
                delta = torch.lerp(cf[ch, rows], values[0].T, weight).sub_(old)
            else:
                delta = (values[0] - values[1]).T.mul_(weight)
            num += delta.pow(2).sum()
            old += delta
        return float(num.sqrt() / old_norm.clamp_min(1e-12))


def vote(style: torch.Tensor, assign: torch.Tensor, content_hw: tuple[int, int], patch_size: int) -> torch.Tensor:
    """``style`` (C, Hs, Ws), ``assign`` (Hc*Wc,) flat style indices -> target (C, Hc, Wc)."""
    return Voter(style, patch_size)(assign, content_hw)

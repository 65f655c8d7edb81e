"""Voting: rebuild a target feature map from the full-dimensional style features of the assigned patches.

Content position ``c`` matched to style position ``s`` contributes the style patch around ``s`` to the target
patch around ``c``; every target position is the average of the contributions it receives (parts of a style
patch that fall outside the style map contribute nothing). With 1x1 patches the target is exactly the style
features rearranged by the assignment.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def vote(style: torch.Tensor, assign: torch.Tensor, content_hw: tuple[int, int], patch_size: int,
         chunk_elements: int = 1 << 20) -> torch.Tensor:
    """``style`` (C, Hs, Ws), ``assign`` (Hc*Wc,) flat style indices -> target (C, Hc, Wc).

    Works on bands of content rows: the whole style patch of every position in the band is gathered at once
    (neighbouring rows of the padded style map, so memory access is nearly contiguous), then each patch offset
    is added to the shifted target. ``chunk_elements`` bounds the gathered block (keep it cache-sized).
    """
    c, hs, ws = style.shape
    hc, wc = content_hw
    p, r = patch_size, patch_size // 2
    if p == 1:
        return style.reshape(c, -1).index_select(1, assign).view(c, hc, wc)
    dev, dt = style.device, style.dtype
    wsp = ws + 2 * r
    # (Np, C+1): the style features, zero outside the map, plus a validity column that counts contributions
    rows = torch.cat([F.pad(style, (r, r, r, r)), F.pad(torch.ones(1, hs, ws, device=dev, dtype=dt), (r, r, r, r))])
    rows = rows.permute(1, 2, 0).reshape(-1, c + 1).contiguous()
    base = ((assign // ws + r) * wsp + (assign % ws + r)).view(hc, wc)
    dys = torch.arange(-r, r + 1, device=dev).repeat_interleave(p)
    dxs = torch.arange(-r, r + 1, device=dev).repeat(p)
    offs = dys * wsp + dxs
    acc = torch.zeros(hc + 2 * r, wc + 2 * r, c + 1, device=dev, dtype=dt)
    band = max(1, min(hc, chunk_elements // max(1, wc * p * p * (c + 1))))
    buf = torch.empty(band * wc * p * p, c + 1, device=dev, dtype=dt)  # reused: fresh big buffers cost page faults
    for y0 in range(0, hc, band):
        y1 = min(hc, y0 + band)
        idx = (base[y0:y1].reshape(-1, 1) + offs).reshape(-1)
        g = torch.index_select(rows, 0, idx, out=buf[:idx.numel()]).view(y1 - y0, wc, p * p, c + 1)
        for k, (dy, dx) in enumerate(zip(dys.tolist(), dxs.tolist())):
            # content position (y, x) sends style (sy+dy, sx+dx) to target (y+dy, x+dx)
            acc[y0 + r + dy:y1 + r + dy, r + dx:r + dx + wc] += g[:, :, k]
    out = acc[r:r + hc, r:r + wc]
    out = out[..., :c] / out[..., c:].clamp_min(1e-12)
    return out.permute(2, 0, 1).contiguous()

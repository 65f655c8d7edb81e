"""The matching representation of a feature map: one vector per position describing its patch.

Steps (fixed per level, fitted once on the content and style maps):

1. L2-normalise the feature vector at every position (zero vectors stay zero);
2. optionally project channels onto the top principal directions (``pca_dims``; uncentred, so dot products,
   i.e. cosines, are what is preserved) and L2-normalise again, as the official release does (its PCA comes
   before the normalisation), so that position similarities stay true cosines;
3. take the dense ``p x p`` patch around every position (stride 1, zeros outside the map);
4. optionally project the patch vector onto its top principal directions (``patch_dims``): a compact
   descriptor that makes local search a cheap gather;
5. L2-normalise the (patch or descriptor) vector.

The similarity of a content and a style position is the dot product of their vectors: the cosine of the two
(projected) patches, 1.0 for identical patches. :func:`assigned_patch_cosine` gives the same cosine on the
full-dimensional features, for reporting. Everything is computed in row bands of at most ``chunk_elements``
values, so memory stays bounded at large sizes. The PCA bases are fitted on at most 4096 sampled positions per
map (a basis, not a search: every position is still compared).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def normalize_positions(f: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(C, H, W) -> same, each position's C-vector scaled to unit L2 norm (zero vectors stay zero)."""
    return f * (f * f).sum(0, keepdim=True).clamp_min(eps * eps).rsqrt()


def normalize_rows(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, D) -> same, each row scaled to unit L2 norm (zero rows stay zero)."""
    return x * (x * x).sum(1, keepdim=True).clamp_min(eps * eps).rsqrt()


def _top_directions(x: torch.Tensor, dims: int, seed: int) -> torch.Tensor:
    """Top ``dims`` right singular vectors of the sample matrix ``x`` (S, D): the uncentred principal axes.

    A randomised SVD (a few power iterations) costs O(S*D*dims); a full eigendecomposition of the D x D
    second-moment matrix took seconds at D = 1000.
    """
    q = min(dims + 16, *x.shape)
    threads = torch.get_num_threads()
    try:
        # small LAPACK calls (QR) are much faster single-threaded, and pathological when cores are shared
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(seed)
            _, _, v = torch.svd_lowrank(x, q=q, niter=3)
    finally:
        torch.set_num_threads(threads)
    return v[:, :dims].contiguous()


def _sample_positions(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    if n <= count:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:count]


class MatchSpace:
    """Fixed projections of one level; :meth:`embed` maps a (C, H, W) map to (H*W, E) position vectors."""

    def __init__(self, patch_size: int, channel_basis: torch.Tensor | None = None,
                 patch_basis: torch.Tensor | None = None, chunk_elements: int = 1 << 24):
        self.patch_size = patch_size
        self.channel_basis = channel_basis
        self.patch_basis = patch_basis
        self.chunk_elements = int(chunk_elements)

    @classmethod
    def fit(cls, content: torch.Tensor, style: torch.Tensor, patch_size: int, pca_dims: int | None = None,
            patch_dims: int | None = None, seed: int = 0, chunk_elements: int = 1 << 24,
            max_samples: int = 4096) -> "MatchSpace":
        """Fit the (uncentred) PCA bases on sampled positions of both maps."""
        g = torch.Generator().manual_seed(seed)
        c = content.shape[0]
        space = cls(patch_size, chunk_elements=chunk_elements)
        maps = (content, style)
        # only the sampled positions are normalised and projected (the result equals doing it on whole maps)
        if pca_dims is not None and pca_dims < c:
            cols = [unit_columns_at(m, _sample_positions(m.shape[1] * m.shape[2], max_samples, g).to(m.device))
                    for m in maps]
            space.channel_basis = _top_directions(torch.cat(cols, 1).T, pca_dims, seed)
        d = c if space.channel_basis is None else space.channel_basis.shape[1]
        if patch_dims is not None and patch_dims < d * patch_size ** 2:
            rows = []
            for m in maps:
                h, w = m.shape[1:]
                pos = _sample_positions(h * w, max_samples // 2, g).to(m.device)
                rows.append(normalize_rows(space._patch_rows(m, pos // w, pos % w)))
            space.patch_basis = _top_directions(torch.cat(rows, 0), patch_dims, seed)
        return space

    def _patch_rows(self, f: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """Unnormalised patch vectors (S, D*p*p), ``F.unfold`` order, of the channel-projected unit positions
        around (ys, xs) of the raw map ``f`` (zeros outside the map)."""
        py, px = patch_offsets(ys, xs, self.patch_size)
        v = unit_columns_at(f, py.reshape(-1), px.reshape(-1))  # (C, S*p*p), offsets of a patch together
        if self.channel_basis is not None:
            v = normalize_columns(self.channel_basis.to(v.dtype).T @ v)
        return v.view(-1, ys.numel(), self.patch_size ** 2).transpose(0, 1).reshape(ys.numel(), -1)

    @property
    def dims(self) -> int | None:
        return None if self.patch_basis is None else self.patch_basis.shape[1]

    def _position_vectors(self, f: torch.Tensor) -> torch.Tensor:
        """Steps 1-2: unit per-position vectors. With a channel basis the first normalisation is skipped: it only
        scales each position, which the renormalisation after the projection undoes (one full-size map less)."""
        if self.channel_basis is None:
            return normalize_positions(f)
        return normalize_positions(torch.einsum("cd,chw->dhw", self.channel_basis.to(f.dtype), f))

    def embed(self, f: torch.Tensor) -> torch.Tensor:
        """(C, H, W) -> (H*W, E) unit position vectors (see the module docstring)."""
        p, r = self.patch_size, self.patch_size // 2
        g = self._position_vectors(f)
        d, h, w = g.shape
        if self.patch_basis is not None:
            # the patch projection is linear: one p x p convolution with the basis as filters (no unfolded copy)
            e = self.patch_basis.shape[1]
            cl = torch.channels_last
            weight = self.patch_basis.T.reshape(e, d, p, p).to(g.dtype).contiguous(memory_format=cl)
            # channels-last in and out: the (H*W, E) rows, gathered by index later, come out row-major as a view
            # (a transposed view made the gathers 8x slower; a copy cost as much as the convolution)
            # band by band of rows (a band's convolution reads r rows of context on each side of it): the
            # temporaries hold one band, only the (H*W, E) result is whole-map
            out = torch.empty(h * w, e, device=f.device, dtype=f.dtype)
            gp = F.pad(g, (r, r, r, r))
            band = max(1, self.chunk_elements // max(1, w * max(e, d * p * p)))
            for y0 in range(0, h, band):
                y1 = min(h, y0 + band)
                part = F.conv2d(gp[None, :, y0:y1 + 2 * r].contiguous(memory_format=cl), weight)[0]
                out[y0 * w:y1 * w] = normalize_rows(part.permute(1, 2, 0).reshape((y1 - y0) * w, e))
            return out
        e = d * p * p
        out = torch.empty(h * w, e, device=f.device, dtype=f.dtype)
        gp = F.pad(g, (r, r, r, r))
        band = max(1, self.chunk_elements // max(1, w * d * p * p))
        for y0 in range(0, h, band):
            y1 = min(h, y0 + band)
            u = F.unfold(gp[None, :, y0:y1 + 2 * r], p)[0].T  # (band*W, D*p*p)
            out[y0 * w:y1 * w] = normalize_rows(u)
        return out

    def describe(self, channels: int) -> list[str]:
        """The approximations this space makes, for the metadata."""
        notes = []
        d = channels
        if self.channel_basis is not None:
            d = self.channel_basis.shape[1]
            notes.append(f"channel PCA to {d} of {channels} dims")
        if self.patch_basis is not None:
            notes.append(f"patch descriptors: PCA to {self.patch_basis.shape[1]} of {d * self.patch_size ** 2} dims")
        return notes


def patch_offsets(ys: torch.Tensor, xs: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, p*p) row and column of every position of the ``p x p`` patch around each (ys, xs), row-major."""
    r = p // 2
    offs = torch.arange(-r, r + 1, device=ys.device)
    py = (ys[:, None, None] + offs[None, :, None]).expand(-1, p, p)
    px = (xs[:, None, None] + offs[None, None, :]).expand(-1, p, p)
    return py.reshape(-1, p * p), px.reshape(-1, p * p)


def normalize_columns(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(D, N) -> same, each column scaled to unit L2 norm (zero columns stay zero)."""
    return x * (x * x).sum(0, keepdim=True).clamp_min(eps * eps).rsqrt()


def unit_columns_at(f: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor | None = None) -> torch.Tensor:
    """(C, N) unit feature vectors of ``f`` (C, H, W) at positions (ys, xs), one per column, zero outside the map
    (``xs`` None: ``ys`` holds flat positions). Equal to indexing :func:`normalize_positions` of the zero-padded
    map, without normalising the whole map."""
    c, h, w = f.shape
    if xs is None:
        ys, xs = ys // w, ys % w
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    flat = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)
    v = normalize_columns(f.reshape(c, -1).index_select(1, flat))
    return v * inside[None, :].to(v.dtype)


def assigned_patch_cosine(content: torch.Tensor, style: torch.Tensor, assign: torch.Tensor, patch_size: int,
                          chunk_elements: int = 1 << 22, positions: torch.Tensor | None = None) -> torch.Tensor:
    """The true cosine, on the full-dimensional features, of each content patch and its assigned style patch.

    ``content`` (C, Hc, Wc), ``style`` (C, Hs, Ws), ``assign`` (Hc*Wc,) flat style indices. Patches are the
    ``p x p`` blocks of position-normalised features, zero outside the map (as in the matching). Returns one
    value in [-1, 1] per content position (or per entry of ``positions``); 1.0 means an identical patch.
    Only the positions asked for are read and normalised.
    """
    c, hc, wc = content.shape
    ws = style.shape[2]
    pp = patch_size ** 2
    pos = torch.arange(hc * wc, device=content.device) if positions is None else positions
    n = pos.numel()
    matched = assign.index_select(0, pos)
    out = torch.empty(n, dtype=content.dtype, device=content.device)
    step = max(1, chunk_elements // max(1, 2 * c * pp))
    for i in range(0, n, step):
        a = unit_columns_at(content, *(o.reshape(-1) for o in patch_offsets(pos[i:i + step] // wc,
                                                                              pos[i:i + step] % wc, patch_size)))
        b = unit_columns_at(style, *(o.reshape(-1) for o in patch_offsets(matched[i:i + step] // ws,
                                                                            matched[i:i + step] % ws, patch_size)))
        m = a.shape[1] // pp
        num = (a * b).sum(0).view(m, pp).sum(1)
        na, nb = (a * a).sum(0).view(m, pp).sum(1), (b * b).sum(0).view(m, pp).sum(1)
        out[i:i + step] = num / (na * nb).sqrt().clamp_min(1e-12)
    return out

"""Backdrop that an edit uncovers (hair removed, a face made smaller), taken from the photo's visible backdrop.

The generator invents the uncovered backdrop at the model's resolution, from what it learnt (synthetic faces, in
our trainings): its colour drifts and it has no texture at the photo's resolution. :func:`fill_uncovered` rebuilds
the region from the photo itself, split by frequency at ``sigma`` (about one model pixel in photo pixels):

* **colour** (below ``sigma``): the photo's low band on the visible backdrop bordering the region is carried
  smoothly into it by a membrane (the solution of Laplace's equation with those boundary values, as in Poisson image
  editing). ``shading`` keeps that fraction of the generator's own low band (a Poisson blend of the generator's fill
  at 1); the editor uses 0, because the generator's colour drifts *inside* the region, where no boundary corrects
  it (docs/portrait.md has the measurements);
* **texture** (above ``sigma``): the photo's own high-frequency residual is quilted into the region from the
  visible backdrop around it, tile by tile (Efros & Freeman's image quilting on the residual band): each tile is
  copied from the source window whose overlap with the texture already there (the photo's around the region,
  earlier tiles inside), whose colour and whose texture strength (carried in by the membrane like the colour) match
  best.

Everything at the low band is computed on a grid ``sigma / 2`` coarser than the photo, so the cost does not grow
with the photo's resolution; the quilting scores candidates on a subsampled window for the same reason.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch.nn import functional as F

from genkit.models.portrait.compositing import distance_to

STRENGTH_WEIGHT = 2.0  # how much the texture's strength counts against its colour when choosing where to copy from


def fill_uncovered(generated: torch.Tensor, photo: torch.Tensor, target: torch.Tensor, source: torch.Tensor,
                   sigma: float, shading: float = 0.0, seed: int = 0) -> torch.Tensor:
    """``generated`` (1, 3, H, W) with the ``target`` pixels (H, W) bool replaced by the colour of the ``source``
    pixels (H, W) bool of ``photo`` (1, 3, H, W), the visible backdrop, carried in by a membrane (plus ``shading`` x
    the generator's own low band relative to its border), and the backdrop's texture quilted in. Pixels outside
    ``target`` are returned unchanged."""
    if not bool(target.any()) or not bool(source.any()):
        return generated
    k = max(1, int(sigma / 2))
    photo_low = masked_low_band(photo, source, sigma, k)
    residual = (photo - photo_low).where(source[None, None], torch.zeros_like(photo))
    # the texture's local strength, carried into the region like the colour: windows of the same strength are copied
    strength = masked_low_band(residual.pow(2).mean(1, keepdim=True), source, 2 * sigma, k).clamp_min(0).sqrt()
    reference = torch.cat([photo_low, STRENGTH_WEIGHT * strength], 1)
    gen_low = masked_low_band(generated, target | source, sigma, k)
    drawn = torch.cat([shading * gen_low, torch.zeros_like(strength)], 1)
    low = drawn + _membrane_correction(reference - drawn, target, source, k)
    guide = torch.where(source[None, None], reference, low)
    low = low[:, :3]
    tile = tile_size(sigma)
    # the texture comes from the backdrop around the region, away from the other labels' edges (label maps are not
    # pixel-exact: the backdrop beside them holds stray hair and the edges of faces)
    nearby = source & (distance_to(target) <= 4 * tile) & (distance_to(~source & ~target) > tile)
    texture = quilt(residual[0].cpu().numpy(), guide[0].cpu().numpy(), nearby.cpu().numpy(),
                    target.cpu().numpy(), tile, np.random.default_rng(seed), guided=(source | target).cpu().numpy())
    filled = (low + torch.from_numpy(texture).to(low)[None]).clamp(0, 1)
    return torch.where(target[None, None], filled, generated)


def tile_size(sigma: float) -> int:
    """Quilting tiles three low-band widths wide (the residual's structures fit inside), at least 12 px."""
    return max(12, round(3 * sigma))


# --------------------------------------------------------------------------------------------- low band
def _reduce(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, H, W) block means over k x k (the edge blocks padded by repetition)."""
    if k == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % k, 0, -h % k), mode="replicate")
    return F.avg_pool2d(x, k)


def _expand(x: torch.Tensor, k: int, size: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`_reduce`: bilinear, block centres on block centres, cut to ``size``."""
    if k == 1:
        return x
    up = F.interpolate(x, scale_factor=k, mode="bilinear", align_corners=False)
    return up[..., :size[0], :size[1]]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    if sigma < 0.3:
        return x
    radius = min(int(3 * sigma + 0.5), (min(x.shape[-2:]) - 1))
    return gaussian_blur(x, [2 * radius + 1] * 2, [sigma, sigma]) if radius > 0 else x


def masked_low_band(image: torch.Tensor, mask: torch.Tensor, sigma: float, k: int = 1) -> torch.Tensor:
    """(1, C, H, W): a Gaussian blur of ``image`` over the ``mask`` pixels only (normalised convolution: what lies
    outside the mask does not bleed in), computed on a grid ``k`` times coarser and brought back bilinearly."""
    m = mask.to(image.dtype)[None, None]
    num = _blur(_reduce(image * m, k), sigma / k)
    den = _blur(_reduce(m, k), sigma / k)
    low = _expand(num / den.clamp_min(1e-6), k, image.shape[-2:])
    weight = _expand(den, k, image.shape[-2:])
    return torch.where(weight > 1e-4, low, image)


# --------------------------------------------------------------------------------------------- membrane
def _membrane_correction(difference: torch.Tensor, target: torch.Tensor, source: torch.Tensor,
                         k: int) -> torch.Tensor:
    """(1, C, H, W): ``difference`` on the source pixels bordering ``target``, carried harmonically into it
    (zero elsewhere), solved on the k-times coarser grid."""
    t = _reduce(target.float()[None, None], k)[0, 0] > 0
    s = (_reduce(source.float()[None, None], k)[0, 0] > 0) & ~t
    w = _reduce(source.float()[None, None], k)
    values = _reduce(difference * source.float()[None, None], k) / w.clamp_min(1e-6)
    coarse = membrane(values[0].cpu().numpy(), t.cpu().numpy(), s.cpu().numpy())
    out = _expand(torch.from_numpy(coarse)[None].to(difference), k, difference.shape[-2:])
    return out * target[None, None]


def membrane(values: np.ndarray, unknown: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Harmonic interpolation: (C, H, W) equal to ``values`` on ``known``, solving Laplace's equation (4-neighbour)
    on ``unknown`` with the known neighbours as boundary values; neighbours in neither set add no constraint (a free
    boundary). Parts of ``unknown`` that touch no known pixel, and all other pixels, are 0."""
    from scipy.ndimage import binary_dilation, label
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    out = np.where(known[None], values, 0.0).astype(np.float64)
    parts, _ = label(unknown)
    reached = np.unique(parts[binary_dilation(known) & unknown])
    solve = np.isin(parts, reached[reached > 0])
    n = int(solve.sum())
    if n == 0:
        return out.astype(np.float32)
    h, w = unknown.shape
    index = np.full((h, w), -1, dtype=np.int64)
    index[solve] = np.arange(n)
    ys, xs = np.nonzero(solve)
    rows, cols, degree = [], [], np.zeros(n)
    rhs = np.zeros((n, values.shape[0]))
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        i, ny, nx = np.nonzero(inside)[0], ny[inside], nx[inside]
        free = solve[ny, nx]
        rows.append(i[free])
        cols.append(index[ny[free], nx[free]])
        fixed = known[ny, nx] & ~free
        degree += np.bincount(i[free | fixed], minlength=n)
        np.add.at(rhs, i[fixed], values[:, ny[fixed], nx[fixed]].T)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    matrix = coo_matrix((np.concatenate([degree, -np.ones(len(rows))]),
                         (np.concatenate([np.arange(n), rows]), np.concatenate([np.arange(n), cols]))),
                        shape=(n, n)).tocsc()
    solution = spsolve(matrix, rhs)
    out[:, solve] = np.asarray(solution).reshape(n, -1).T
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------- texture
def quilt(residual: np.ndarray, guide: np.ndarray, source: np.ndarray, target: np.ndarray, tile: int,
          rng: np.random.Generator, candidates: int = 200, guided: np.ndarray | None = None) -> np.ndarray:
    """(C, H, W): the ``residual`` band (C, H, W) of the ``source`` pixels quilted into the ``target`` pixels (0
    elsewhere). Tiles of ``tile`` px are filled from the source's border inwards, each copied from the source window
    (the tile plus an overlap of ``tile // 3`` around it, wholly inside the source) that best matches the residual
    already known around the tile and the ``guide`` (the low band) over it, on the ``guided`` pixels (default: the
    source and the target). The windows tried: ``candidates`` drawn
    near the tile, the neighbouring tiles' sources continued (a coherent texture copies whole stretches), then a
    PatchMatch-style random search around the best with shrinking radius (aligns periodic textures)."""
    overlap = max(2, tile // 3)
    win = tile + 2 * overlap
    tops = _source_windows(source, win)
    if len(tops) == 0:
        return np.zeros_like(residual)
    out = np.where(source[None], residual, 0.0).astype(np.float32)
    known = source.copy()
    guided = (source | target) if guided is None else guided
    step = max(1, win // 24)  # score on at most ~24 x 24 samples of each window
    grid = np.arange(0, win, step)
    valid = np.zeros(source.shape, dtype=bool)
    valid[tops[:, 0], tops[:, 1]] = True
    chosen: dict[tuple[int, int], np.ndarray] = {}  # tile -> the offset (source - target) it copied
    for y, x in _tile_order(source, target, tile):
        wy, wx = y - overlap, x - overlap
        ty, tx = np.clip(wy + grid, 0, target.shape[0] - 1), np.clip(wx + grid, 0, target.shape[1] - 1)
        have = known[np.ix_(ty, tx)].astype(np.float32)
        lit = guided[np.ix_(ty, tx)].astype(np.float32)
        want_res, want_low = out[:, ty][:, :, tx], guide[:, ty][:, :, tx]

        score = partial(_mismatch, residual=residual, guide=guide, grid=grid, want=(want_res, want_low),
                        weights=(have, lit))
        here = np.array([wy, wx])
        near = [chosen[n] + here for n in ((y - tile, x), (y + tile, x), (y, x - tile), (y, x + tile)) if n in chosen]
        picks = np.concatenate([_nearby(tops, (wy, wx), candidates, rng, max(target.shape)),
                                _valid(np.array(near, dtype=np.int64).reshape(-1, 2), valid)])
        best = _search(picks, score, valid, tile, rng)
        chosen[(y, x)] = best - here
        _paste(out, known, target, residual, (y, x), best, tile, overlap)
    return np.where(target[None], out, 0.0)


def _paste(out: np.ndarray, known: np.ndarray, target: np.ndarray, residual: np.ndarray, at: tuple[int, int],
           window: np.ndarray, tile: int, overlap: int) -> None:
    """Copy the source ``window`` (top-left corner) onto the tile at ``at``: its core fills the tile's unfilled
    target pixels, its overlap fades (linearly) over the target pixels already filled around the tile, so tiles
    meet without a seam."""
    h, w = target.shape
    y0, x0 = max(at[0] - overlap, 0), max(at[1] - overlap, 0)
    y1, x1 = min(at[0] + tile + overlap, h), min(at[1] + tile + overlap, w)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    outside = np.maximum.reduce([at[0] - yy, yy - (at[0] + tile - 1), at[1] - xx, xx - (at[1] + tile - 1),
                                 np.zeros_like(yy)])
    weight = np.clip(1.0 - outside / (overlap + 1.0), 0.0, 1.0).astype(np.float32)
    sy, sx = window[0] + overlap - at[0], window[1] + overlap - at[1]  # source offset
    patch = residual[:, yy + sy, xx + sx]
    region, done = target[y0:y1, x0:x1], known[y0:y1, x0:x1]
    core = region & ~done & (outside == 0)
    blend = region & done & (outside > 0)
    old = out[:, y0:y1, x0:x1]
    out[:, y0:y1, x0:x1] = np.where(core[None], patch, np.where(blend[None], old + weight * (patch - old), old))
    known[y0:y1, x0:x1] |= core


def _mismatch(picks: np.ndarray, residual: np.ndarray, guide: np.ndarray, grid: np.ndarray,
              want: tuple[np.ndarray, np.ndarray], weights: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(K,): how far each window (top-left corners ``picks`` (K, 2), sampled on ``grid``) is from what the tile
    wants: the mean squared residual difference on the known pixels (``weights[0]``) plus the mean squared guide
    difference per channel on the guided ones (``weights[1]``)."""
    sy, sx = picks[:, 0, None] + grid, picks[:, 1, None] + grid
    cand_res = residual[:, sy[:, :, None], sx[:, None, :]]  # (C, K, g, g)
    cand_low = guide[:, sy[:, :, None], sx[:, None, :]]
    (want_res, want_low), (have, lit) = want, weights
    err = ((cand_res - want_res[:, None]) ** 2 * have).sum((0, 2, 3)) / max(float(have.sum()), 1.0)
    off = ((cand_low - want_low[:, None]) ** 2 * lit).sum((0, 2, 3)) / max(float(lit.sum()), 1.0)
    return err + off / len(guide)


def _valid(picks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The windows among ``picks`` (N, 2) whose top-left corner is a valid source window."""
    h, w = valid.shape
    ok = (picks[:, 0] >= 0) & (picks[:, 0] < h) & (picks[:, 1] >= 0) & (picks[:, 1] < w)
    picks = picks[ok]
    return picks[valid[picks[:, 0], picks[:, 1]]]


def _search(picks: np.ndarray, score, valid: np.ndarray, radius: int, rng: np.random.Generator,
            tries: int = 12) -> np.ndarray:
    """The best window of ``picks``, then improved by random tries around it at radii ``radius``, ``radius / 2``,
    ... 1 (PatchMatch's random search)."""
    err = score(picks)
    best, best_err = picks[int(np.argmin(err))], float(err.min())
    while radius >= 1:
        tries_here = _valid(best + rng.integers(-radius, radius + 1, size=(tries, 2)), valid)
        if len(tries_here):
            err = score(tries_here)
            if float(err.min()) < best_err:
                best, best_err = tries_here[int(np.argmin(err))], float(err.min())
        radius //= 2
    return best


def _source_windows(source: np.ndarray, win: int) -> np.ndarray:
    """(N, 2) top-left corners of the ``win`` x ``win`` windows lying wholly on ``source``."""
    h, w = source.shape
    if h < win or w < win:
        return np.zeros((0, 2), dtype=np.int64)
    sums = np.pad(source.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    full = sums[win:, win:] - sums[:-win, win:] - sums[win:, :-win] + sums[:-win, :-win]
    return np.argwhere(full == win * win)


def _nearby(tops: np.ndarray, at: tuple[int, int], count: int, rng: np.random.Generator, scale: int) -> np.ndarray:
    """``count`` windows drawn without replacement, the nearer to ``at`` the likelier (a Cauchy-like fall-off over a
    quarter of the photo): the backdrop near the hole is the likeliest to continue into it."""
    if len(tops) <= count:
        return tops
    d2 = ((tops - np.asarray(at)) ** 2).sum(1) / (scale / 4) ** 2
    p = 1.0 / (1.0 + d2)
    return tops[rng.choice(len(tops), count, replace=False, p=p / p.sum())]


def _tile_order(source: np.ndarray, target: np.ndarray, tile: int) -> list[tuple[int, int]]:
    """Top-left corners of the tile grid over ``target``, nearest to the source first (the quilt grows inwards)."""
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(~source)
    ys, xs = np.nonzero(target)
    columns = target.shape[1] // tile + 1
    cell = (ys // tile) * columns + xs // tile
    nearest = np.full(cell.max() + 1, np.inf)
    np.minimum.at(nearest, cell, dist[ys, xs])
    used = np.unique(cell)
    used = used[np.argsort(nearest[used], kind="stable")]
    return [(int(c // columns) * tile, int(c % columns) * tile) for c in used]

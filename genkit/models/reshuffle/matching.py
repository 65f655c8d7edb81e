"""Candidate generation and scoring between content and style position vectors.

* :func:`dense_topk`: exact top-k over all (or a subset of) style positions, in row chunks so that at most
  ``chunk_elements`` similarities exist at once (the global search, and the solver's fill step).
* :func:`patchmatch`: the release's PatchMatch (propagation from the neighbours, random search at radii halving
  down to 1) over a k-nearest-neighbour field: each position keeps its ``knn`` best candidates, for the solver.
  Linear in the number of positions, for the fine levels (:func:`local_candidates` + :func:`pair_scores`).
* :func:`upsample_assignment`: carry an assignment from a coarser level to a finer grid.

Assignments are flat style indices ``y * W_style + x``, one per content position (row-major).
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


def label_mismatch(labels_c: torch.Tensor, labels_s: torch.Tensor) -> torch.Tensor:
    """Broadcast mask of (content, style) pairs whose labels differ; content label -1 (unrestricted) matches all."""
    return (labels_c != labels_s) & (labels_c >= 0)


def _chunk_rows(n_cols: int, chunk_elements: int) -> int:
    return max(1, int(chunk_elements) // max(1, n_cols))


def dense_topk(ec: torch.Tensor, es: torch.Tensor, k: int, rows: torch.Tensor | None = None,
               cols: torch.Tensor | None = None, labels_c: torch.Tensor | None = None,
               labels_s: torch.Tensor | None = None, chunk_elements: int = 1 << 24
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each content row, the ``k`` most similar style positions (among ``cols``; same label if labels, content
    label -1 matching any).

    Returns ``(cand, sim)``, both ``(len(rows), k')`` with ``k' = min(k, len(cols))``; ``cand`` holds global style
    indices, ``sim`` the dot products (``-inf`` where no same-label candidate was left).
    """
    rows = torch.arange(ec.shape[0], device=ec.device) if rows is None else rows
    es_sub = es if cols is None else es.index_select(0, cols)
    n_cols = es_sub.shape[0]
    k = min(k, n_cols)
    lab_s = None
    if labels_c is not None:
        lab_s = labels_s if cols is None else labels_s.index_select(0, cols)
    cand = torch.empty(rows.numel(), k, dtype=torch.long, device=ec.device)
    sims = torch.empty(rows.numel(), k, dtype=ec.dtype, device=ec.device)
    step = _chunk_rows(n_cols, chunk_elements)
    for i in range(0, rows.numel(), step):
        r = rows[i:i + step]
        s = ec.index_select(0, r) @ es_sub.T
        if lab_s is not None:
            s.masked_fill_(label_mismatch(labels_c.index_select(0, r)[:, None], lab_s[None, :]), NEG_INF)
        v, j = s.topk(k, dim=1)
        sims[i:i + step] = v
        cand[i:i + step] = j if cols is None else cols[j]
    return cand, sims


# int64/float temporaries each proposed candidate passes through (indices, offsets, scores, the duplicate check's
# sort and masks): a pass over proposals goes in chunks of ``chunk_elements / PROPOSAL_TEMPORARIES`` of them
PROPOSAL_TEMPORARIES = 8


def pair_scores(ec: torch.Tensor, es: torch.Tensor, cand: torch.Tensor, rows: torch.Tensor | None = None,
                chunk_elements: int = 1 << 24) -> torch.Tensor:
    """Similarity of each content row with each of its candidates: ``(M, K)``.

    Gathers the candidates' vectors block by block into one reused buffer and reduces them in place (a batched
    matrix product of 1-column matrices was 3-4x slower on the CPU).
    """
    rows = torch.arange(ec.shape[0], device=ec.device) if rows is None else rows
    m, k = cand.shape
    e = ec.shape[1]
    out = torch.empty(m, k, dtype=ec.dtype, device=ec.device)
    step = max(1, min(m, 4096, chunk_elements // max(1, k * e)))
    buf = torch.empty(step * k, e, dtype=es.dtype, device=es.device)
    for i in range(0, m, step):
        c = cand[i:i + step].reshape(-1)
        b = torch.index_select(es, 0, c, out=buf[:c.numel()]).view(-1, k, e)
        b.mul_(ec.index_select(0, rows[i:i + step]).unsqueeze(1))
        torch.sum(b, dim=2, out=out[i:i + step])
    return out


def local_candidates(assign: torch.Tensor, content_hw: tuple[int, int], style_hw: tuple[int, int],
                     window: int = 1, n_random: int = 4, generator: torch.Generator | None = None,
                     rows: tuple[int, int] | None = None) -> torch.Tensor:
    """Candidate style positions around a current assignment: ``(N_content, K)`` flat style indices.

    * window: the current match shifted by every offset in ``[-window, window]^2``;
    * propagation: for each of the 8 neighbours ``c+n`` of ``c``, the neighbour's match shifted back by ``n``
      (a coherent continuation of the neighbour's patch, the PatchMatch step);
    * random search: ``n_random`` probes around the current match at each radius ``max(H,W)/2, /4, ..., 1`` (the
      release's PatchMatch goes down to radius 1; stopping at ``/16`` left its searches far from exact).
    ``rows``: only the content rows ``[y0, y1)`` (their neighbours' matches are read from the whole ``assign``), so a
    caller can go band by band and hold one band's candidates at a time. Candidates are clamped into the style map;
    duplicates are possible (the caller masks them).
    """
    hc, wc = content_hw
    hs, ws = style_hw
    y0, y1 = (0, hc) if rows is None else rows
    dev = assign.device
    a = assign.view(hc, wc)
    ay, ax = a[y0:y1] // ws, a[y0:y1] % ws
    ys, xs = [], []
    for dy in range(-window, window + 1):
        for dx in range(-window, window + 1):
            ys.append(ay + dy)
            xs.append(ax + dx)
    for ny in (-1, 0, 1):
        yi = (torch.arange(y0, y1, device=dev) + ny).clamp(0, hc - 1)
        for nx in (-1, 0, 1):
            if ny == 0 and nx == 0:
                continue
            # match of the neighbour at (y+ny, x+nx), replicated at the border, shifted back by (ny, nx)
            xi = (torch.arange(wc, device=dev) + nx).clamp(0, wc - 1)
            m = a.index_select(0, yi).index_select(1, xi)
            ys.append(m // ws - ny)
            xs.append(m % ws - nx)
    for rad in search_radii(max(hs, ws)):
        for _ in range(n_random):
            ys.append(ay + torch.randint(-rad, rad + 1, (y1 - y0, wc), generator=generator).to(dev))
            xs.append(ax + torch.randint(-rad, rad + 1, (y1 - y0, wc), generator=generator).to(dev))
    y = torch.stack(ys, -1).clamp_(0, hs - 1)
    x = torch.stack(xs, -1).clamp_(0, ws - 1)
    return y.mul_(ws).add_(x).view((y1 - y0) * wc, -1)


def local_candidate_count(window: int, n_random: int, style_hw: tuple[int, int]) -> int:
    """How many candidates :func:`local_candidates` proposes per position."""
    return (2 * window + 1) ** 2 + 8 + n_random * len(search_radii(max(style_hw)))


def search_radii(side: int) -> list[int]:
    """Random-search radii: ``side/2`` halving down to 1."""
    out, rad = [], max(1, side // 2)
    while rad > 1:
        out.append(rad)
        rad //= 2
    return out + [1]


def patchmatch(ec: torch.Tensor, es: torch.Tensor, start: torch.Tensor, content_hw: tuple[int, int],
               style_hw: tuple[int, int], knn: int = 8, sweeps: int = 3, n_random: int = 1,
               generator: torch.Generator | None = None, labels_c: torch.Tensor | None = None,
               labels_s: torch.Tensor | None = None, window: int = 0,
               chunk_elements: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """A k-nearest-neighbour PatchMatch: ``(cand, sim)``, each position's ``knn`` best style positions found.

    ``start``: ``(N, K0)`` starting candidates (e.g. the previous iteration's list, or an upsampled assignment as
    one column). Every sweep proposes, around each position's current best match, the neighbours' best matches
    shifted back (propagation) and random probes at radii halving down to 1, scores them and keeps the ``knn``
    best distinct candidates. With labels, other-label candidates score ``-inf``. A sweep goes band by band of
    content rows (every band reads the best matches of the sweep's start), so its temporaries hold one band's
    proposals (about ``chunk_elements / PROPOSAL_TEMPORARIES`` of them), not the whole map's.
    """
    hc, wc = content_hw
    cand = start
    sim = _scored(ec, es, cand, labels_c, labels_s, chunk_elements)
    for _ in range(sweeps):
        best = cand.gather(1, sim.argmax(dim=1, keepdim=True)).squeeze(1)
        proposals = cand.shape[1] + local_candidate_count(window, n_random, style_hw)
        k = min(knn, proposals)
        # in place when the list already has its final width: a band's rows are read only by that band
        out_c, out_s = (cand, sim) if cand.shape[1] == k else (cand.new_empty(cand.shape[0], k),
                                                               sim.new_empty(sim.shape[0], k))
        band = max(1, chunk_elements // max(1, PROPOSAL_TEMPORARIES * wc * proposals))
        for y0 in range(0, hc, band):
            y1 = min(hc, y0 + band)
            r = slice(y0 * wc, y1 * wc)
            new = local_candidates(best, content_hw, style_hw, window, n_random, generator, rows=(y0, y1))
            rows = torch.arange(r.start, r.stop, device=ec.device)
            c = torch.cat([cand[r], new], dim=1)
            s = torch.cat([sim[r], _scored(ec, es, new, labels_c, labels_s, chunk_elements, rows)], 1)
            s, top = mask_duplicates(c, s).topk(k, dim=1)
            out_c[r], out_s[r] = c.gather(1, top), s
        cand, sim = out_c, out_s
    return cand, sim


def _scored(ec, es, cand, labels_c, labels_s, chunk_elements, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Scores of ``cand`` (one row per entry of ``rows``, default all content rows), ``-inf`` for other labels."""
    sim = pair_scores(ec, es, cand, rows=rows, chunk_elements=chunk_elements)
    if labels_c is not None:
        lab_c = labels_c if rows is None else labels_c.index_select(0, rows)
        sim.masked_fill_(label_mismatch(lab_c[:, None], labels_s[cand]), NEG_INF)
    return sim


def mask_duplicates(cand: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
    """``sim`` with every repeated candidate of a row (after its first occurrence) set to ``-inf``."""
    sorted_c, order = cand.sort(dim=1)
    dup_sorted = torch.zeros_like(sorted_c, dtype=torch.bool)
    dup_sorted[:, 1:] = sorted_c[:, 1:] == sorted_c[:, :-1]
    dup = torch.zeros_like(dup_sorted).scatter_(1, order, dup_sorted)
    return sim.masked_fill(dup, NEG_INF)


def upsample_assignment(assign: torch.Tensor, coarse_content_hw: tuple[int, int], coarse_style_hw: tuple[int, int],
                        content_hw: tuple[int, int], style_hw: tuple[int, int]) -> torch.Tensor:
    """Map an assignment on a coarse grid to a finer one.

    A fine content position inherits the match of the coarse cell it lies in, offset by its relative position
    inside that cell (so the 2x2 fine positions of a coarse cell map onto the 2x2 fine positions of its match).
    """
    hc0, wc0 = coarse_content_hw
    hs0, ws0 = coarse_style_hw
    hc, wc = content_hw
    hs, ws = style_hw
    dev = assign.device
    a = assign.view(hc0, wc0)

    def axis(n_fine: int, n_coarse: int):
        pos = (torch.arange(n_fine, device=dev, dtype=torch.float64) + 0.5) * n_coarse / n_fine
        cell = pos.floor().clamp(0, n_coarse - 1)
        return cell.long(), (pos - cell).clamp(0, 1 - 1e-9)

    cy, fy = axis(hc, hc0)
    cx, fx = axis(wc, wc0)
    m = a[cy][:, cx]
    sy = ((m // ws0).double() + fy[:, None]) * hs / hs0
    sx = ((m % ws0).double() + fx[None, :]) * ws / ws0
    sy = sy.floor().long().clamp(0, hs - 1)
    sx = sx.floor().long().clamp(0, ws - 1)
    return (sy * ws + sx).reshape(-1)

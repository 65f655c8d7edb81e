"""Is a stylised image healthy? Four checks against its content and style (design notes, section 3).

A stylised output should take the style's colours, so "close to the content's statistics" is the wrong test (it
rewards under-stylisation). With ``c`` the content, ``s`` the style, ``o`` the output, ``mu``/``sigma`` the
per-channel mean / standard deviation, ``Y`` the mean luminance (Rec. 601) and ``G`` the mean absolute finite
difference (horizontal and vertical, over the channels):

* **N1** (not dark, not blown out): ``0.85 min(Y_c, Y_s) <= Y_o <= 1.15 max(Y_c, Y_s)``, and the same per channel for
  ``mu``;
* **N2** (not washed out): ``sigma_o >= 0.5 min(sigma_c, sigma_s)`` per channel;
* **N3** (not blurred): ``G_o >= 0.5 min(G_c, G_s)``;
* **N4** (stylised): the sliced Wasserstein distance of the output's colours to the style's is below the content's.

:func:`style_progress` measures how far the output's channel means moved from the content's towards the style's.
Images are RGB tensors in [0, 1], (3, H, W) or (1, 3, H, W); sizes may differ.
"""

from __future__ import annotations

import torch

LUMA = (0.299, 0.587, 0.114)


def _chw(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().float().cpu()
    return x[0] if x.dim() == 4 else x


def luminance(x: torch.Tensor) -> float:
    x = _chw(x)
    return float(sum(w * x[i].mean() for i, w in enumerate(LUMA)))


def gradient(x: torch.Tensor) -> float:
    """Mean absolute finite difference, horizontal and vertical, over the channels."""
    x = _chw(x)
    return float(0.5 * ((x[:, :, 1:] - x[:, :, :-1]).abs().mean() + (x[:, 1:] - x[:, :-1]).abs().mean()))


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = 64, max_pixels: int = 16384,
                       seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance of the colour distributions of two images (pixels as RGB points): the mean,
    over ``directions`` random unit directions, of the exact 1-D distance (``scipy.stats.wasserstein_distance``)
    of the projected pixels. At most ``max_pixels`` pixels per image are used (a seeded sample)."""
    from scipy.stats import wasserstein_distance

    g = torch.Generator().manual_seed(seed)

    def pixels(x):
        p = _chw(x).reshape(3, -1).T
        if p.shape[0] > max_pixels:
            p = p[torch.randperm(p.shape[0], generator=g)[:max_pixels]]
        return p.double()

    pa, pb = pixels(a), pixels(b)
    dirs = torch.randn(directions, 3, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    qa, qb = (pa @ dirs.T).numpy(), (pb @ dirs.T).numpy()
    return float(sum(wasserstein_distance(qa[:, i], qb[:, i]) for i in range(directions)) / directions)


def style_progress(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> float:
    """How far the output's channel means moved from the content's towards the style's: the projection of
    ``mu_o - mu_c`` on ``mu_s - mu_c``, as a fraction of its length (0: the content's colours, 1: the style's)."""
    mo, mc, ms = (_chw(x).mean((1, 2)).double() for x in (output, content, style))
    d = ms - mc
    return float((mo - mc) @ d / (d @ d).clamp_min(1e-12))


def health_checks(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict:
    """N1-N4 for one output: ``{"N1": {"ok", ...values}, ..., "ok": all four}``."""
    o, c, s = _chw(output), _chw(content), _chw(style)
    y = {k: luminance(v) for k, v in (("o", o), ("c", c), ("s", s))}
    mu = {k: v.mean((1, 2)) for k, v in (("o", o), ("c", c), ("s", s))}
    sd = {k: v.std((1, 2)) for k, v in (("o", o), ("c", c), ("s", s))}
    gr = {k: gradient(v) for k, v in (("o", o), ("c", c), ("s", s))}
    lo_mu, hi_mu = 0.85 * torch.minimum(mu["c"], mu["s"]), 1.15 * torch.maximum(mu["c"], mu["s"])
    n1 = (0.85 * min(y["c"], y["s"]) <= y["o"] <= 1.15 * max(y["c"], y["s"])
          and bool(((mu["o"] >= lo_mu) & (mu["o"] <= hi_mu)).all()))
    n2 = bool((sd["o"] >= 0.5 * torch.minimum(sd["c"], sd["s"])).all())
    n3 = gr["o"] >= 0.5 * min(gr["c"], gr["s"])
    swd_o, swd_c = sliced_wasserstein(o, s), sliced_wasserstein(c, s)
    out = {
        "N1": {"ok": bool(n1), "luminance": y["o"], "bounds": [0.85 * min(y["c"], y["s"]), 1.15 * max(y["c"], y["s"])],
               "mean": mu["o"].tolist(), "mean_bounds": [lo_mu.tolist(), hi_mu.tolist()]},
        "N2": {"ok": n2, "std": sd["o"].tolist(), "min": (0.5 * torch.minimum(sd["c"], sd["s"])).tolist()},
        "N3": {"ok": bool(n3), "gradient": gr["o"], "min": 0.5 * min(gr["c"], gr["s"])},
        "N4": {"ok": swd_o < swd_c, "swd_output_style": swd_o, "swd_content_style": swd_c},
    }
    out["ok"] = all(out[k]["ok"] for k in ("N1", "N2", "N3", "N4"))
    return out


def failed(checks: dict) -> list[str]:
    """The names of the checks that failed."""
    return [k for k in ("N1", "N2", "N3", "N4") if not checks[k]["ok"]]

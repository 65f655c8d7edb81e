"""Colour preservation (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", 2016).

* ``luminance``: transfer on luminance only. The style's luminance is matched to the content's (mean, std),
  both are turned into grey images, and the stylised luminance is recombined with the content's chroma.
* ``histogram``: the style image's colours are mapped to the content's colour mean and covariance (a linear
  colour transform) before the transfer.

Images are (3, H, W) or (B, 3, H, W) RGB tensors in [0, 1].
"""

from __future__ import annotations

import torch

_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                              [-0.168736, -0.331264, 0.5],
                              [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB -> (Y, Cb, Cr) with chroma centred at 0 (BT.601 full range)."""
    m = _RGB_TO_YCBCR.to(x)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_RGB_TO_YCBCR.double()).to(y)
    return torch.einsum("ij,...jhw->...ihw", m, y)


def _sqrtm(cov: torch.Tensor, inverse: bool = False, eps: float = 1e-5) -> torch.Tensor:
    eye = torch.eye(cov.shape[0], dtype=torch.float64, device=cov.device)
    evals, evecs = torch.linalg.eigh(cov.double() + eps * eye)
    d = evals.clamp_min(eps).sqrt()
    d = 1.0 / d if inverse else d
    return (evecs * d) @ evecs.T


def match_color(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``source`` with the colour mean and covariance of ``reference`` (linear transform), clamped to [0, 1]."""
    src = source.reshape(3, -1).double()
    ref = reference.reshape(3, -1).double()
    mu_s, mu_r = src.mean(1, keepdim=True), ref.mean(1, keepdim=True)
    cov_s = torch.cov(src)
    cov_r = torch.cov(ref)
    a = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    out = a @ (src - mu_s) + mu_r
    return out.to(source.dtype).reshape(source.shape).clamp(0, 1)


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Style luminance with the content luminance's mean and std."""
    s_mu, s_sd = style_y.mean(), style_y.std().clamp_min(1e-6)
    return ((style_y - s_mu) / s_sd * content_y.std() + content_y.mean()).clamp(0, 1)


def prepare(content: torch.Tensor, style: torch.Tensor, mode: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (content, style) images the transfer should run on for a colour mode."""
    if mode is None:
        return content, style
    if mode == "histogram":
        return content, match_color(style, content)
    if mode == "luminance":
        cy = rgb_to_ycbcr(content)[..., :1, :, :]
        sy = match_luminance(rgb_to_ycbcr(style)[..., :1, :, :], cy)
        return cy.expand_as(content).contiguous(), sy.expand_as(style).contiguous()
    raise ValueError(f"unknown colour mode {mode!r}")


def finish(result: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Post-process a transfer result for a colour mode (luminance: put the content's chroma back)."""
    if mode != "luminance":
        return result
    y = rgb_to_ycbcr(result)[..., :1, :, :]
    chroma = rgb_to_ycbcr(content)[..., 1:, :, :]
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=-3)).clamp(0, 1)

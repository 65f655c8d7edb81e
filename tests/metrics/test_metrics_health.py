"""N1-N4 health checks: a colour-transferred content passes; darkened, washed-out, blurred and collapsed copies fail."""

import pytest
import torch
from torch.nn import functional as F

from genkit.metrics.health import failed, health_checks, sliced_wasserstein, style_progress


def _images():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    content = torch.stack([0.3 + 0.4 * xx, 0.5 + 0.3 * yy, 0.4 + 0.2 * (xx * yy)]).clamp(0, 1)
    content = (content + 0.08 * torch.rand(3, 64, 64, generator=g)).clamp(0, 1)
    style = torch.stack([0.8 * torch.ones(64, 64), 0.45 * torch.ones(64, 64), 0.2 * torch.ones(64, 64)])
    style = (style + 0.25 * (torch.rand(3, 64, 64, generator=g) - 0.5)).clamp(0, 1)
    return content, style


def _stylised(content, style):
    """The content with the style's per-channel mean and std (a Reinhard-style colour transfer)."""
    mc, sc = content.mean((1, 2), keepdim=True), content.std((1, 2), keepdim=True)
    ms, ss = style.mean((1, 2), keepdim=True), style.std((1, 2), keepdim=True)
    return ((content - mc) / sc * ss + ms).clamp(0, 1)


def _blur(x, k=9):
    w = torch.ones(3, 1, k, k) / (k * k)
    return F.conv2d(F.pad(x[None], (k // 2,) * 4, mode="replicate"), w, groups=3)[0]


def test_a_stylised_image_passes_all_four():
    content, style = _images()
    out = health_checks(_stylised(content, style), content, style)
    assert out["ok"], failed(out)
    assert style_progress(_stylised(content, style), content, style) > 0.9


@pytest.mark.parametrize("degrade, expected", [
    (lambda x: x * 0.5, "N1"),  # darkened
    (lambda x: 0.85 * x.mean((1, 2), keepdim=True) + 0.15 * x, "N2"),  # washed out
    (lambda x: _blur(_blur(x)), "N3"),  # blurred
    (lambda x: x.mean((1, 2), keepdim=True).expand_as(x).clone(), "N2"),  # collapsed to one colour
])
def test_degraded_copies_fail(degrade, expected):
    content, style = _images()
    bad = degrade(_stylised(content, style))
    out = health_checks(bad, content, style)
    assert not out["ok"] and expected in failed(out)


def test_the_content_itself_is_not_stylised():
    content, style = _images()
    out = health_checks(content, content, style)
    assert failed(out) == ["N4"]  # healthy, but it did not take the style's colours
    assert style_progress(content, content, style) == pytest.approx(0.0, abs=1e-9)


def test_sliced_wasserstein_is_zero_for_the_same_colours_and_grows_with_a_shift():
    content, _ = _images()
    shuffled = content.reshape(3, -1)[:, torch.randperm(64 * 64)].reshape(3, 64, 64)
    assert sliced_wasserstein(content, shuffled) == pytest.approx(0.0, abs=1e-9)
    near, far = sliced_wasserstein(content, content + 0.05), sliced_wasserstein(content, content + 0.2)
    assert 0 < near < far

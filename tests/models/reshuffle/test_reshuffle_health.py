"""N1-N4 on a cheap path: a stylised output is healthy and stylised, its degraded copies are not, and the release's
content share stylises further than genkit 0.3's per-level blend."""

from __future__ import annotations


import pytest
import torch
from torch.nn import functional as F

from genkit.metrics.health import failed, health_checks, style_progress

LEVELS = ["relu4_1", "relu3_1", "relu2_1"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def outputs(random_encoder):
    from genkit.core.tensors import pil_to_tensor
    from genkit.data.samples import sample_photo
    from genkit.models.reshuffle import Stylizer

    encoder = random_encoder
    c_img, s_img = sample_photo("chelsea"), sample_photo("brush_strokes")
    out = {}
    for share in ("release", "per_level"):
        st = Stylizer(optimize={"steps": 10}, encoder=encoder, size=64, iterations=2, content_share=share)
        out[share] = st(c_img, s_img).image
    o = out["release"]
    content = F.interpolate(pil_to_tensor(c_img)[None], size=o.shape[-2:], mode="bilinear", antialias=True)[0]
    return out, content, pil_to_tensor(s_img)


def _blur(x, k=5):
    w = torch.ones(3, 1, k, k) / (k * k)
    return F.conv2d(F.pad(x[None], (k // 2,) * 4, mode="replicate"), w, groups=3)[0]


def test_the_output_is_healthy_and_stylised(outputs):
    out, content, style = outputs
    checks = health_checks(out["release"], content, style)
    assert checks["ok"], failed(checks)


@pytest.mark.parametrize("name, degrade, check", [
    ("darkened", lambda x: x * 0.5, "N1"),
    ("washed out", lambda x: 0.85 * x.mean((1, 2), keepdim=True) + 0.15 * x, "N2"),
    ("blurred", lambda x: _blur(_blur(_blur(x))), "N3"),
    ("collapsed", lambda x: x.mean((1, 2), keepdim=True).expand_as(x).clone(), "N3"),
])
def test_degraded_copies_of_the_output_fail(outputs, name, degrade, check):
    out, content, style = outputs
    checks = health_checks(degrade(out["release"]), content, style)
    assert check in failed(checks), (name, failed(checks))


def test_the_release_share_moves_further_towards_the_style(outputs):
    out, content, style = outputs
    assert style_progress(out["release"], content, style) > style_progress(out["per_level"], content, style) + 0.05

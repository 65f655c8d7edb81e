"""`genkit demo` (the README's main job) end to end at its smallest settings."""

import json
from html.parser import HTMLParser

import pytest
from PIL import Image

from helpers import run_cli


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


@pytest.mark.slow
def test_demo_writes_a_report_whose_images_all_exist(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli(["genkit", "demo", "--quick", "--out", str(out)], tmp_path, timeout=900)
    report = out / "report.html"
    assert "report written to" in proc.stdout and report.exists()
    html = report.read_text()
    parser = _Images()
    parser.feed(html)
    assert len(parser.srcs) >= 3
    for src in parser.srcs:
        img = Image.open(report.parent / src)
        img.load()
        assert min(img.size) > 16
    # offline: random weights were used, and the page and the metrics say so
    assert "RANDOM WEIGHTS" in html
    data = json.loads((out / "metrics.json").read_text())
    assert data["random_weights"] is True
    for key in ("style/reshuffle/gram_style_dist", "portrait/recon_l1", "portrait/mask_consistency_miou",
                "portrait/fid"):
        assert key in data["metrics"]
    # each training is a regular run with its checkpoint, and the demo has its own W&B run
    for name in ("reshuffle_decoders", "parser_synthetic", "portrait_synthetic"):
        assert (out / "runs" / name / "checkpoints" / "last.ckpt").exists()
        assert len(list((out / "runs" / name / "wandb").glob("offline-run-*"))) == 1, f"{name} has its own W&B run"
    assert list((out / "wandb").glob("offline-run-*"))

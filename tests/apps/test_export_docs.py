"""docs/export.md's example script parses a photo from the ONNX file alone, with genkit's labels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from fixtures.tiny_models import make_parser_checkpoint
from helpers import REPO
from PIL import Image

from genkit.apps.export import export_onnx, export_pretrained
from genkit.models.parsing.checkpoint import load_parser

pytestmark = pytest.mark.usefixtures("one_thread")
EXAMPLE = REPO / "docs" / "examples" / "onnx_parse.py"


def test_the_documented_onnx_example_writes_genkit_s_labels(tmp_path):
    import skimage.data

    folder = export_pretrained(make_parser_checkpoint(tmp_path / "p.ckpt", "helen11", size=32), tmp_path / "folder")
    export_onnx(folder, tmp_path / "onnx")
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.png")
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "onnx" / "parser.onnx"),
                           str(tmp_path / "astronaut.png"), str(tmp_path / "labels.png")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    labels = np.asarray(Image.open(tmp_path / "labels.png"))
    small = Image.fromarray(skimage.data.astronaut()).resize((32, 32), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        own = load_parser(folder)(x).argmax(1)[0].numpy()
    assert labels.shape == (32, 32) and np.array_equal(labels, own)
    classes = [line.split(":")[0] for line in proc.stdout.splitlines()]
    assert classes and set(classes) <= {"background", "skin", "left_brow", "right_brow", "left_eye", "right_eye",
                                        "nose", "upper_lip", "inner_mouth", "lower_lip", "hair"}

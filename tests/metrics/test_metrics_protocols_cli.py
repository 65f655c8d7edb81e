"""``genkit eval protocols``, ``--protocol`` and ``genkit eval prdc`` from the command line (RANDOM weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genkit.cli import main


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GENKIT_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("GENKIT_OFFLINE", "1")


def _folder(path, n, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.clip(rng.normal(128 + 20 * seed, 50, (24 + i, 30, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"{i}.png")
    return path


@pytest.mark.slow
def test_protocols_side_by_side_and_what_differs(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 4, 0), _folder(tmp_path / "b", 4, 1)
    code = main(["eval", "protocols", str(a), str(b), "--allow-random", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert set(rows) == {"torch-fidelity", "clean-fid", "pytorch-fid"}
    assert float(rows["torch-fidelity"].split()[1]) > 0 and float(rows["pytorch-fid"].split()[1]) > 0
    assert "unavailable" in rows["clean-fid"] and "inception-2015-12-05.pt" in rows["clean-fid"]
    assert "what differs:" in out and "pytorch-fid vs torch-fidelity: resize: F.interpolate bilinear" in out
    assert "RANDOM" in err


def test_stats_record_the_protocol_and_mixing_is_refused(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 4, 0), _folder(tmp_path / "b", 4, 1)
    assert main(["eval", "stats", str(a), "-o", str(tmp_path / "a.npz"), "--protocol", "pytorch-fid",
                 "--allow-random", "--no-progress"]) == 0
    out, _ = capsys.readouterr()
    assert "protocol  pytorch-fid" in out
    with np.load(tmp_path / "a.npz") as data:
        assert json.loads(str(data["protocol"]))["fid_protocol"] == "pytorch-fid"
    code = main(["eval", "fid", str(tmp_path / "a.npz"), str(b), "--allow-random", "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2 and "pytorch-fid protocol" in err and "torch-fidelity" in err
    assert len(err.strip().splitlines()) <= 3
    code = main(["eval", "fid", str(a), str(b), "--protocol", "clean-fid", "--allow-random"])
    _, err = capsys.readouterr()
    assert code == 2 and "inception-2015-12-05.pt" in err and "no RANDOM variant" in err


def test_prdc_command_names_real_and_fake(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 5, 0), _folder(tmp_path / "b", 5, 3)
    code = main(["eval", "prdc", str(a), str(b), "--allow-random", "--json", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    assert set(res) >= {"precision", "recall", "density", "coverage"}
    assert res["protocol"]["input1"]["role"] == "real" and res["protocol"]["input2"]["role"] == "fake"
    assert all(0.0 <= res[k] <= 1.0 for k in ("precision", "recall", "coverage"))


def test_validation_metric_takes_a_protocol_and_rounds_float_images_like_saved_files():
    import torch

    from genkit.metrics.fid import FrechetInceptionDistance
    from genkit.metrics.inception import to_uint8

    metric = FrechetInceptionDistance(allow_random=True, value_range=(-1.0, 1.0), protocol="pytorch-fid")
    assert metric.protocol["fid_protocol"] == "pytorch-fid"
    x = torch.rand(3, 3, 40, 52) * 2 - 1
    metric.update(x, real=True)
    metric.update(to_uint8(x, (-1.0, 1.0)), real=False)
    real, fake = metric.stats(real=True), metric.stats(real=False)
    assert np.array_equal(real.mu, fake.mu) and np.array_equal(real.sigma, fake.sigma)
    assert real.protocol["fid_protocol"] == "pytorch-fid"


def test_portrait_validation_config_refuses_an_unknown_protocol():
    from genkit.models.portrait.config import ValidationSettings

    assert ValidationSettings(fid_protocol="clean-fid").fid_protocol == "clean-fid"
    with pytest.raises(ValueError, match="fid_protocol must be one of"):
        ValidationSettings(fid_protocol="tf-fid")

"""Metric folders are read as torch-fidelity reads them (alpha dropped), other handling is an explicit option
recorded in the protocol and the statistics-cache key; bad files and bad output paths are caught early."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from genkit.cli import main
from genkit.io import METRICS, ReadPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def _rgba_set(rng, n=3, size=32):
    """``n`` RGBA images with varied colours under varied transparency."""
    out = []
    for _ in range(n):
        rgb = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        alpha = np.zeros((size, size), np.uint8)
        alpha[:, : rng.integers(4, size - 4)] = 255
        out.append(np.dstack([rgb, alpha]))
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``rgba/`` (transparent files), ``dropped/`` (their colour channels), ``white/`` (composited over white)."""
    root = tmp_path_factory.mktemp("alpha")
    for name in ("rgba", "dropped", "white"):
        (root / name).mkdir()
    for i, arr in enumerate(_rgba_set(np.random.default_rng(0))):
        Image.fromarray(arr).save(root / "rgba" / f"{i}.png")
        Image.fromarray(arr[..., :3]).save(root / "dropped" / f"{i}.png")
        a = arr[..., 3:].astype(np.float64) / 255
        Image.fromarray((arr[..., :3] * a + 255 * (1 - a) + 0.5).astype(np.uint8)).save(root / "white" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def inception():
    from genkit.metrics.inception import random_inception

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return random_inception(seed=0)


def test_rgba_folders_give_the_fid_of_their_colour_channels_as_torch_fidelity(folders, inception):
    """Default reading drops alpha (torch-fidelity, pytorch-fid, clean-fid): the RGBA folder and its colour channels
    are the same set of images (FID 0), unlike the white-composited copy."""
    from genkit.metrics.fid import fid_between

    same = fid_between(folders / "rgba", folders / "dropped", extractor=inception)
    other = fid_between(folders / "rgba", folders / "white", extractor=inception)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    assert other["fid"] > 1e-3
    protocol = same["protocol"]
    assert protocol["image_reading"] == METRICS.record() and protocol["image_reading"]["transparency"] == "drop"
    assert protocol["input1"]["conversions"] == {"RGBA -> RGB (alpha dropped)": 3}
    assert "conversions" not in protocol["input2"]


def test_compositing_over_white_is_an_explicit_option_with_its_own_cache_entry(folders, inception):
    from genkit.metrics.fid import fid_between

    white = ReadPolicy(transparency="white", profile="torch-fidelity")
    first = fid_between(folders / "rgba", folders / "dropped", extractor=inception)  # fills the cache (drop)
    assert first["protocol"]["input1"]["stats_cache"] in ("miss", "hit")
    res = fid_between(folders / "rgba", folders / "white", extractor=inception, reading=white)
    assert res["fid"] == pytest.approx(0.0, abs=1e-6)  # a cache hit from the 'drop' pass would not give 0
    assert res["protocol"]["image_reading"]["transparency"] == "white"
    assert res["protocol"]["input1"]["stats_cache"] == "miss"


def test_strict_modes_refuse_rgba_in_metric_folders(folders, capsys):
    rc = main(["eval", "fid", str(folders / "rgba"), str(folders / "dropped"), "--allow-random", "--no-progress",
               "--strict-modes", "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 2 and "0.png: image is RGBA" in err and "strict" in err and "Traceback" not in err


def test_eval_cli_records_the_reading_in_json(folders, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["eval", "fid", str(folders / "rgba"), str(folders / "white"), "--allow-random", "--no-progress",
               "--transparency", "white", "--json", str(out)])
    assert rc == 0
    payload = json.loads(out.read_text())
    assert payload["protocol"]["image_reading"]["transparency"] == "white"
    assert payload["fid"] == pytest.approx(0.0, abs=1e-6)
    assert "reading" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--json", "{tmp}"], "--json is an existing folder"),
    (["--json", "{tmp}/afile/r.json"], "afile is a file"),
])
def test_eval_output_paths_are_checked_before_any_work(folders, tmp_path, monkeypatch, capsys, argv, message):
    import genkit.metrics.fid as fid

    def must_not_run(*a, **k):
        raise AssertionError("the network was built before the output path was checked")

    monkeypatch.setattr(fid, "build_inception", must_not_run)
    (tmp_path / "afile").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    rc = main(["eval", "fid", str(folders / "rgba"), str(folders / "dropped"), "--allow-random", *argv])
    assert rc == 2 and message in capsys.readouterr().err


def test_eval_stats_output_must_be_npz_before_any_work(folders, tmp_path, monkeypatch, capsys):
    import genkit.metrics.fid as fid

    monkeypatch.setattr(fid, "build_inception", lambda *a, **k: pytest.fail("network built"))
    rc = main(["eval", "stats", str(folders / "rgba"), "-o", str(tmp_path / "ref.txt"), "--allow-random"])
    assert rc == 2 and ".npz" in capsys.readouterr().err

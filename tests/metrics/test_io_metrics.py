"""Metric folders are read as torch-fidelity reads them (alpha dropped), other handling is an explicit option
recorded in the protocol and the statistics-cache key; bad files and bad output paths are caught early."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from genkit.cli import main
from genkit.core.reading import METRICS, ReadPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def _rgba_set(rng, n=2, size=32):
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


def test_rgba_folders_are_read_as_torch_fidelity_reads_them_other_handling_is_explicit(folders, inception):
    """Default reading drops alpha (torch-fidelity, pytorch-fid, clean-fid): the RGBA folder and its colour channels
    have the same FID statistics (FID 0), unlike the white-composited copy. Compositing over white is an explicit
    option, recorded in the protocol and kept apart in the statistics cache."""
    from genkit.metrics.fid import folder_stats

    rgba, record = folder_stats(folders / "rgba", inception)
    dropped, _ = folder_stats(folders / "dropped", inception)
    white, _ = folder_stats(folders / "white", inception)
    np.testing.assert_array_equal(rgba.mu, dropped.mu)
    np.testing.assert_array_equal(rgba.sigma, dropped.sigma)
    assert np.abs(rgba.mu - white.mu).max() > 1e-3
    assert rgba.protocol["image_reading"] == METRICS.record() and rgba.protocol["image_reading"]["transparency"] == "drop"
    assert record["conversions"] == {"RGBA -> RGB (alpha dropped)": 2}
    assert folder_stats(folders / "rgba", inception)[1]["stats_cache"] == "hit"  # same files, same reading

    policy = ReadPolicy(transparency="white", profile="torch-fidelity")
    composited, record = folder_stats(folders / "rgba", inception, reading=policy)
    assert record["stats_cache"] == "miss"  # a hit on the 'drop' entry would be the wrong statistics
    np.testing.assert_array_equal(composited.mu, white.mu)
    assert composited.protocol["image_reading"]["transparency"] == "white"
    assert record["conversions"] == {"RGBA -> RGB (alpha composited over white)": 2}


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
    import genkit.metrics.protocols as protocols

    def must_not_run(*a, **k):
        raise AssertionError("the network was built before the output path was checked")

    monkeypatch.setattr(protocols, "build_extractor", must_not_run)  # every protocol's network is built there
    (tmp_path / "afile").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    rc = main(["eval", "fid", str(folders / "rgba"), str(folders / "dropped"), "--allow-random", *argv])
    assert rc == 2 and message in capsys.readouterr().err


def test_eval_stats_output_must_be_npz_before_any_work(folders, tmp_path, monkeypatch, capsys):
    import genkit.metrics.protocols as protocols

    monkeypatch.setattr(protocols, "build_extractor", lambda *a, **k: pytest.fail("network built"))
    rc = main(["eval", "stats", str(folders / "rgba"), "-o", str(tmp_path / "ref.txt"), "--allow-random"])
    assert rc == 2 and ".npz" in capsys.readouterr().err

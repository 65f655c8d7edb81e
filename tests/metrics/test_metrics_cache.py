"""The FID statistics cache: keyed on the files' identity, compact entries, one entry per folder, LRU size cap,
and ``genkit eval cache list|clear``.

The cache does not depend on the network, so most tests use a cheap stand-in feature extractor.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.cli import main
from genkit.core.errors import ConfigError
from genkit.metrics.fid import fid_between, folder_stats
from genkit.metrics.stats_cache import stats_cache_dir, cache_entries, clear_cache, parse_size

pytestmark = pytest.mark.usefixtures("one_thread")


class ThumbnailFeatures:
    """uint8 images -> (N, D) float32: a fixed random projection of 4x4 thumbnails (stands in for the Inception)."""

    def __init__(self, num_features: int = 2048, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.num_features = num_features
        self.proj = torch.randn(3 * 16, num_features, generator=g)
        self.device = torch.device("cpu")
        self.protocol = {"weights": f"stand-in {num_features}", "feature": str(num_features), "resize": "area 4x4",
                         "input": "uint8 RGB"}
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        x = torch.nn.functional.adaptive_avg_pool2d(images.float() / 255.0, 4).flatten(1)
        return (x @ self.proj).relu()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GENKIT_STATS_CACHE_MAX", raising=False)


def _write_images(folder, n, seed, ext="png", size=16):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img_{i:03d}.{ext}")
    return folder


def _fid(a, b, extractor, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-N warnings
        return fid_between(a, b, extractor=extractor, num_workers=0, **kw)


def test_same_size_replacement_with_the_old_mtime_is_recomputed(tmp_path):
    """A file replaced by one of the same size whose mtime is set back must not be served from the cache."""
    ext = ThumbnailFeatures()
    a, b = _write_images(tmp_path / "a", 4, seed=1, ext="bmp"), _write_images(tmp_path / "b", 4, seed=2)
    first = _fid(a, b, ext)
    assert first["protocol"]["input1"]["stats_cache"] == "miss"

    victim = a / "img_002.bmp"
    before = victim.stat()
    rng = np.random.default_rng(99)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(victim)  # BMP: same size, new pixels
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = victim.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    second = _fid(a, b, ext)
    truth = _fid(a, b, ext, use_cache=False)
    assert second["protocol"]["input1"]["stats_cache"] == "miss"
    assert second["fid"] == truth["fid"]
    assert truth["fid"] != pytest.approx(first["fid"], rel=1e-6)


def test_small_folder_entry_is_compact_and_a_regenerated_folder_replaces_its_entry(tmp_path):
    ext = ThumbnailFeatures()
    ref = _write_images(tmp_path / "ref", 5, seed=0)
    gen = tmp_path / "generated"
    for k in range(3):  # a model writing new samples under the same names, FID after each
        _write_images(gen, 5, seed=10 + k)
        assert _fid(ref, gen, ext)["protocol"]["input2"]["stats_cache"] == "miss"
    entries = cache_entries()
    assert sorted(e.folder for e in entries) == sorted([str(ref.resolve()), str(gen.resolve())])
    # 5 x 2048 float32 features instead of a 2048 x 2048 float64 covariance (33.5 MB)
    assert all(e.size < 100_000 for e in entries), [e.size for e in entries]
    assert {e.representation for e in entries} == {"features"} and {e.num_samples for e in entries} == {5}


@pytest.mark.parametrize("num_features, n", [(16, 6), (16, 40)])  # features stored (N <= D) / covariance (N > D)
def test_cached_statistics_equal_freshly_computed_ones_exactly(tmp_path, num_features, n):
    ext = ThumbnailFeatures(num_features)
    a = _write_images(tmp_path / "a", n, seed=3)
    fresh, _ = folder_stats(a, ext, batch_size=7, num_workers=0, use_cache=False)
    miss, rec1 = folder_stats(a, ext, batch_size=7, num_workers=0)
    calls = ext.calls
    hit, rec2 = folder_stats(a, ext, batch_size=7, num_workers=0)
    assert (rec1["stats_cache"], rec2["stats_cache"]) == ("miss", "hit") and ext.calls == calls
    for s in (miss, hit):
        np.testing.assert_array_equal(s.mu, fresh.mu)
        np.testing.assert_array_equal(s.sigma, fresh.sigma)
        assert s.num_samples == n
    (entry,) = cache_entries()
    assert entry.representation == ("features" if n <= num_features else "mean + covariance upper triangle")
    feats = ext(torch.stack([torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1)
                             for f in sorted(a.iterdir())])).double().numpy()
    np.testing.assert_allclose(hit.sigma, np.cov(feats, rowvar=False), rtol=1e-10, atol=1e-12)


def test_least_recently_used_entries_are_evicted_over_the_cap(tmp_path, monkeypatch):
    ext = ThumbnailFeatures()
    folders = [_write_images(tmp_path / f"f{i}", 5, seed=i) for i in range(4)]
    folder_stats(folders[0], ext, num_workers=0)
    one_entry = cache_entries()[0].size
    monkeypatch.setenv("GENKIT_STATS_CACHE_MAX", str(int(2.5 * one_entry)))  # room for two entries
    folder_stats(folders[1], ext, num_workers=0)
    os.utime(cache_entries()[0].path, ns=(1, 1))  # make f0 clearly the older one ...
    assert folder_stats(folders[0], ext, num_workers=0)[1]["stats_cache"] == "hit"  # ... then use it again
    folder_stats(folders[2], ext, num_workers=0)  # over the cap: f1, the least recently used, goes
    assert {e.folder for e in cache_entries()} == {str(folders[0].resolve()), str(folders[2].resolve())}
    monkeypatch.setenv("GENKIT_STATS_CACHE_MAX", "0")  # stores nothing
    assert folder_stats(folders[3], ext, num_workers=0)[1]["stats_cache"] == "off"
    assert len(cache_entries()) == 2


def test_cache_size_setting_is_parsed_or_refused_clearly(monkeypatch):
    assert parse_size("1GB") == 1 << 30 and parse_size("500 MiB") == 500 << 20 and parse_size("0") == 0
    assert parse_size("1.5k") == 1536 and parse_size(123) == 123
    with pytest.raises(ConfigError, match="GENKIT_STATS_CACHE_MAX.*'lots'"):
        parse_size("lots", "GENKIT_STATS_CACHE_MAX")


def test_damaged_and_old_format_entries_are_recomputed_listed_and_evictable(tmp_path):
    ext = ThumbnailFeatures()
    a = _write_images(tmp_path / "a", 5, seed=1)
    stats, _ = folder_stats(a, ext, num_workers=0)
    (entry,) = cache_entries()
    entry.path.write_bytes(b"garbage")
    again, rec = folder_stats(a, ext, num_workers=0)
    assert rec["stats_cache"] == "miss"
    np.testing.assert_array_equal(again.sigma, stats.sigma)
    legacy = stats_cache_dir() / "old-0123456789abcdef01234567.npz"  # format 1: full sigma, no meta
    np.savez(legacy, mu=np.zeros(4), sigma=np.eye(4))
    listed = {e.path.name: e for e in cache_entries()}
    assert listed[legacy.name].legacy and listed[legacy.name].folder is None
    assert len(clear_cache()) == 2 and cache_entries() == []


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_cache_list_and_clear(tmp_path, capsys):
    ext = ThumbnailFeatures()
    a, b = _write_images(tmp_path / "a", 5, seed=1), _write_images(tmp_path / "b", 6, seed=2)
    _fid(a, b, ext)
    code, out, err = _run(capsys, "eval", "cache", "list")
    assert code == 0, err
    assert str(a.resolve()) in out and str(b.resolve()) in out and "2 entries" in out and "1.00 GiB" in out
    code, out, _ = _run(capsys, "eval", "cache", "list", "--json")
    listed = json.loads(out)
    assert {e["folder"]: e["num_samples"] for e in listed["entries"]} == {str(a.resolve()): 5, str(b.resolve()): 6}
    assert listed["max_bytes"] == 1 << 30 and listed["total_bytes"] == sum(e["bytes"] for e in listed["entries"])

    code, out, _ = _run(capsys, "eval", "cache", "clear", a)
    assert code == 0 and "removed 1 entry" in out
    assert [e.folder for e in cache_entries()] == [str(b.resolve())]
    code, out, _ = _run(capsys, "eval", "cache", "clear")
    assert code == 0 and "removed 1 entry" in out and cache_entries() == []
    code, out, _ = _run(capsys, "eval", "cache", "list")
    assert code == 0 and "empty" in out

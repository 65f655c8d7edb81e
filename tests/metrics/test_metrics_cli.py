"""``genkit eval``: tables and JSON with the protocol, the statistics cache, and clear errors for bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from genkit.cli import main


@pytest.fixture(autouse=True)
def _stats_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENKIT_CACHE_DIR", str(tmp_path / "cache"))


def _folder(path, n, size=32, seed=0, sizes=None):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = sizes[i] if sizes else (size, size)
        img = np.clip(rng.normal(128, 60, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"img_{i:02d}.png")
    return path


def _run(capsys, *argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_fid_json_records_protocol_and_uses_the_cache(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 3, seed=1), _folder(tmp_path / "b", 3, seed=2)
    code, out, err = _run(capsys, "eval", "fid", a, b, "--allow-random", "--json", "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    assert res["fid"] > 0 and res["random_weights"] is True
    proto = res["protocol"]
    assert proto["weights"] == "RANDOM" and "TF1-exact" in proto["resize"]
    assert proto["input1"]["num_samples"] == 3 and proto["input1"]["image_sizes"] == {"32x32": 3}
    assert proto["input1"]["stats_cache"] == "miss"
    assert "RANDOM" in err  # loud on stderr too

    # second run: the statistics come from the cache; the table says so and says RANDOM
    code, out, err = _run(capsys, "eval", "fid", a, b, "--allow-random", "--json", tmp_path / "r.json")
    assert code == 0
    assert "stats cache: hit" in out and "RANDOM" in out and f"{res['fid']:.6g}" in out
    assert json.loads((tmp_path / "r.json").read_text())["fid"] == pytest.approx(res["fid"], rel=1e-12)

    # a folder against itself: 0 (cached statistics, exact arithmetic up to rounding), never negative
    code, out, _ = _run(capsys, "eval", "fid", a, a, "--allow-random", "--json")
    assert 0.0 <= json.loads(out)["fid"] < 1e-9


def test_stats_npz_then_fid_against_it(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 3, seed=1), _folder(tmp_path / "b", 4, seed=2)
    code, out, err = _run(capsys, "eval", "stats", a, "-o", tmp_path / "ref.npz", "--allow-random", "--no-cache")
    assert code == 0, err
    with np.load(tmp_path / "ref.npz") as data:
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
    code, out, _ = _run(capsys, "eval", "fid", tmp_path / "ref.npz", b, "--allow-random", "--json")
    direct = json.loads(out)
    code, out, _ = _run(capsys, "eval", "fid", a, b, "--allow-random", "--json")
    assert json.loads(out)["fid"] == pytest.approx(direct["fid"], rel=1e-9)
    assert direct["protocol"]["input1"]["kind"] == "npz"


def test_fid_with_a_weights_file_records_its_hash(tmp_path, capsys):
    from genkit.metrics.inception import random_inception
    from genkit.core.weights import sha256_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        path = random_inception(seed=9).save_weights(tmp_path / "w.pth")
    a, b = _folder(tmp_path / "a", 2, seed=1), _folder(tmp_path / "b", 2, seed=2)
    code, out, err = _run(capsys, "eval", "fid", a, b, "--weights", path, "--json", "--no-cache")
    assert code == 0, err
    res = json.loads(out)
    assert res["protocol"]["weights"] == sha256_file(path) and res["random_weights"] is False


def test_fid_mixed_sizes_are_allowed_and_reported(tmp_path, capsys):
    a = _folder(tmp_path / "a", 3, sizes=[(32, 32), (48, 40), (32, 32)])
    b = _folder(tmp_path / "b", 2, seed=3)
    code, out, err = _run(capsys, "eval", "fid", a, b, "--allow-random", "--json", "--batch-size", "2")
    assert code == 0, err
    rec = json.loads(out)["protocol"]["input1"]
    assert rec["mixed_sizes"] is True and rec["image_sizes"] == {"32x32": 2, "40x48": 1}
    assert rec["num_samples"] == 3


def test_missing_weights_offline_is_a_clear_error(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 2), _folder(tmp_path / "b", 2, seed=1)
    code, out, err = _run(capsys, "eval", "fid", a, b)
    assert code == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in err and "--allow-random" in err
    assert "Traceback" not in err
    code, _, err = _run(capsys, "eval", "fid", a, b, "--weights", tmp_path / "nope.pth")
    assert code == 2 and "nope.pth" in err


def test_unreadable_image_is_named(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 3), _folder(tmp_path / "b", 2, seed=1)
    (a / "img_01.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = _run(capsys, "eval", "fid", a, b, "--allow-random", "--no-cache")
    assert code == 2 and "img_01.png" in err and "cannot be decoded" in err


def test_unreadable_image_is_named_with_loader_workers(tmp_path):
    from genkit.core.errors import DataError
    from genkit.metrics.folders import iter_uint8_groups

    a = _folder(tmp_path / "a", 3)
    (a / "img_02.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"img_02\.png.*cannot be decoded"):
        list(iter_uint8_groups(sorted(a.iterdir()), batch_size=2, num_workers=1))


def test_too_few_images_and_empty_folders(tmp_path, capsys):
    one, two = _folder(tmp_path / "one", 1), _folder(tmp_path / "two", 2, seed=1)
    code, _, err = _run(capsys, "eval", "fid", one, two, "--allow-random", "--no-cache")
    assert code == 2 and "at least 2 images" in err and "one" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "eval", "fid", tmp_path / "empty", two, "--allow-random")
    assert code == 2 and "contains no images" in err


def test_npz_of_wrong_dimension_is_a_clear_error(tmp_path, capsys):
    np.savez(tmp_path / "small.npz", mu=np.zeros(64), sigma=np.eye(64))
    np.savez(tmp_path / "ok.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    code, _, err = _run(capsys, "eval", "fid", tmp_path / "small.npz", tmp_path / "ok.npz")
    assert code == 2 and "small.npz" in err and "dimension 64" in err


def test_kid_cli_and_its_errors(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 4, seed=1), _folder(tmp_path / "b", 4, seed=2)
    code, out, err = _run(capsys, "eval", "kid", a, b, "--allow-random", "--kid-subset-size", "3",
                          "--kid-subsets", "5", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert set(res) >= {"kid_mean", "kid_std", "protocol"} and res["protocol"]["kid"]["subset_size"] == 3
    code, _, err = _run(capsys, "eval", "kid", a, b, "--allow-random")  # default subset size 1000 > 4 images
    assert code == 2 and "subset size 1000" in err
    np.savez(tmp_path / "s.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    code, _, err = _run(capsys, "eval", "kid", tmp_path / "s.npz", b, "--allow-random")
    assert code == 2 and "KID needs images" in err


def test_lpips_cli_paired_sizes(tmp_path, capsys):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), tmp_path / "alex.pth")
    a, b = _folder(tmp_path / "a", 2, seed=1), _folder(tmp_path / "b", 2, seed=2)
    code, out, err = _run(capsys, "eval", "lpips", a, b, "--weights", tmp_path / "alex.pth")
    assert code == 0, err
    assert "lpips" in out and "pairs" in out
    c = _folder(tmp_path / "c", 2, sizes=[(32, 32), (40, 32)])
    code, _, err = _run(capsys, "eval", "lpips", a, c, "--weights", tmp_path / "alex.pth")
    assert code == 2 and "img_01.png" in err and "equal size" in err
    code, _, err = _run(capsys, "eval", "lpips", a, b)
    assert code == 2 and "alexnet-owt-7be5be79.pth" in err


def test_fid_of_fewer_than_2049_images_warns_and_records_it(tmp_path, capsys):
    a, b = _folder(tmp_path / "a", 3, seed=1), _folder(tmp_path / "b", 4, seed=2)
    code, out, err = _run(capsys, "eval", "fid", a, b, "--allow-random", "--json", tmp_path / "r.json", "--no-progress")
    assert code == 0, err
    proto = json.loads((tmp_path / "r.json").read_text())["protocol"]
    assert proto["input1"]["rank_deficient"] is True and proto["input2"]["rank_deficient"] is True
    assert "exact for rank-deficient" in proto["trace_sqrt"]
    assert len(proto["warnings"]) == 2
    assert "3 samples give a covariance of rank at most 2 < 2048" in proto["warnings"][0]
    assert "genkit: warning:" in err and "rank at most 3 < 2048" in err  # on stderr
    assert "warning" in out and "rank at most 2 < 2048" in out  # and in the table


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "RANDOM" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_stats_and_json_files_are_replaced_only_with_overwrite(tmp_path, capsys):
    a = _folder(tmp_path / "a", 3, seed=1)
    ref, res = tmp_path / "ref.npz", tmp_path / "r.json"
    np.savez(ref, mu=np.ones(3), sigma=np.eye(3))  # hours of work, for all the command knows
    res.write_text('{"fid": 12.5}\n')
    before = ref.read_bytes(), res.read_bytes()
    code, _, err = _run(capsys, "eval", "stats", a, "-o", ref, "--allow-random", "--no-cache")
    assert code == 2 and f"{ref}: --output already exists; add --overwrite" in _one_error_line(err)
    for argv in (["fid", a, a, "--allow-random"], ["kid", a, a, "--allow-random"], ["diversity", a],
                 ["mask-consistency", a, a, "--parser", tmp_path / "no-such-parser.ckpt"]):
        code, _, err = _run(capsys, "eval", *argv, "--json", res)
        assert code == 2 and f"{res}: --json already exists; add --overwrite" in _one_error_line(err)
    assert (ref.read_bytes(), res.read_bytes()) == before
    code, _, err = _run(capsys, "eval", "stats", a, "-o", ref, "--allow-random", "--no-cache", "--overwrite",
                        "--json", res)
    assert code == 0, err
    with np.load(ref) as data:
        assert data["mu"].shape == (2048,)
    assert json.loads(res.read_text())["output"] == str(ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "r.json", "ref.npz"]  # no temporary left


def test_fid_against_a_text_file_named_npz_is_one_line_before_any_network(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENKIT_WEIGHTS_DIR", str(tmp_path / "no-weights"))  # the Inception file is missing
    (tmp_path / "bad.npz").write_text("not statistics\n")
    other = _folder(tmp_path / "other", 2)
    code, _, err = _run(capsys, "eval", "fid", tmp_path / "bad.npz", other)
    line = _one_error_line(err)
    assert code == 2 and line.startswith(f"genkit: error: {tmp_path / 'bad.npz'}: not a valid FID statistics .npz")
    assert "allow_pickle" not in line and "'mu' and 'sigma' arrays" in line

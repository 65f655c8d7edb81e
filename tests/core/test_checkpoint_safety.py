"""genkit.core.checkpoints: archive sizes checked before inflating, non-finite weights refused, naming the file."""

import sys
import time

import pytest
import torch

from fixtures.bombs import small_bomb
from fixtures.user_mistakes import BAD_CHECKPOINTS, LOADERS
from genkit.core import checkpoints
from genkit.core.checkpoints import load_checkpoint
from genkit.core.errors import CheckpointError, WeightsFileError


def test_non_finite_weights_are_refused_naming_the_file_and_tensor(tmp_path):
    path = tmp_path / "diverged.ckpt"
    torch.save({"state_dict": {"a.weight": torch.ones(3), "b.weight": torch.tensor([1.0, float("nan")]),
                               "c.bias": torch.tensor([float("inf")]), "steps": torch.tensor([3])}}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: the decoder checkpoint holds NaN or infinite weights "
                                              r"\(b.weight and 1 more tensor\(s\)\)"):
        load_checkpoint(path, "decoder checkpoint")
    torch.save({"w": torch.tensor([float("-inf")])}, path)  # a bare state dict
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights \(w\)"):
        load_checkpoint(path)
    # other entries may hold infinities (Lightning's ModelCheckpoint keeps kth_value = inf)
    torch.save({"state_dict": {"w": torch.ones(2)}, "callbacks": {"kth_value": torch.tensor(float("inf"))}}, path)
    assert load_checkpoint(path)["state_dict"]["w"].sum() == 2


def test_a_zip_bomb_is_refused_from_its_declared_sizes(tmp_path):
    bomb = small_bomb(tmp_path / "bomb.ckpt", 256 << 20)
    assert bomb.stat().st_size < 2 << 20
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"{bomb}: refused as a possible decompression bomb: its zip entries "
                                              r"declare 256.0 MiB uncompressed .* nothing was inflated"):
        load_checkpoint(bomb)
    assert time.perf_counter() - start < 1.0
    from genkit.core.weights import load_state_dict

    with pytest.raises(WeightsFileError, match="refused as a possible decompression bomb"):
        load_state_dict("inception", path=bomb)


def test_the_inflation_limit_follows_the_file_size(tmp_path, monkeypatch):
    path = tmp_path / "ok.ckpt"
    torch.save({"state_dict": {"w": torch.randn(1000)}}, path)
    assert load_checkpoint(path)["state_dict"]["w"].shape == (1000,)  # a normal (stored) archive
    monkeypatch.setattr(checkpoints, "INFLATION_SLACK", 0)
    bomb = small_bomb(tmp_path / "b.ckpt", 4 << 20)  # 4 MiB of zeros deflate to a few KiB
    with pytest.raises(CheckpointError, match="declare 4.0 MiB"):
        load_checkpoint(bomb)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("bad", BAD_CHECKPOINTS)
def test_every_loader_refuses_every_bad_checkpoint_in_one_line_naming_it(loader, bad, tmp_path, capsys):
    import re

    from fixtures.user_mistakes import photo
    from genkit.cli import main

    write, says = BAD_CHECKPOINTS[bad]
    ckpt = write(tmp_path / "model.ckpt")
    p = photo(tmp_path / "d" / "a.png", size=64)
    args = [a.format(photo=p, ckpt=ckpt, out=tmp_path / "out", photos=tmp_path / "d") for a in LOADERS[loader]]
    code = main(args)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("genkit")]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"genkit: error: {ckpt}: ") and re.search(says, err[0]), err[0]


def test_the_zip_bomb_is_refused_in_a_fresh_process_before_it_is_inflated(tmp_path):
    """The refusal in a real process, imports and argument parsing included (peak RSS: benchmarks/safety.py)."""
    import subprocess

    from fixtures.user_mistakes import photo

    bomb = small_bomb(tmp_path / "bomb.ckpt", 256 << 20)
    p = photo(tmp_path / "a.png", size=64)
    proc = subprocess.run([sys.executable, "-m", "genkit", "stylize", str(p), str(p), "-o", str(tmp_path / "o.png"),
                           "--decoder", str(bomb)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"{bomb}: refused as a possible decompression bomb" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0

"""ckpt_path=last and ckpt_path=FILE with damaged, non-finite, foreign and hostile checkpoints (#22 item 3)."""

import argparse
import logging
import os
import time

import pytest
import torch

from genkit.core.errors import CheckpointError, ConfigError
from genkit.training.runs import find_last_checkpoint, read_run_record

from test_train import _fake_checkpoint


def _age(path, seconds_ago):
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_a_damaged_newest_checkpoint_is_reported_and_the_runs_intact_one_taken(tmp_path, caplog):
    older = _fake_checkpoint(tmp_path / "t/runs/2026-01-01_00-00-00/checkpoints/last.ckpt", step=4)
    newer = tmp_path / "t/runs/2026-01-02_00-00-00/checkpoints"
    intact = _fake_checkpoint(newer / "epoch002-step000012.ckpt", step=12)
    last = _fake_checkpoint(newer / "last.ckpt", step=13)
    last.write_bytes(last.read_bytes()[:200])  # truncated, e.g. by a full disk while copying the run
    _age(older, 100), _age(intact, 50)
    with caplog.at_level(logging.WARNING, logger="genkit.training.runs"):
        assert find_last_checkpoint(tmp_path, "t") == intact
    assert f"damaged checkpoint skipped: {last}: not a" in caplog.text


def test_a_newest_run_without_an_intact_checkpoint_is_refused_not_an_older_run_resumed(tmp_path):
    _fake_checkpoint(tmp_path / "t/runs/2026-01-01_00-00-00/checkpoints/last.ckpt", step=4)
    newer = tmp_path / "t/runs/2026-01-02_00-00-00/checkpoints"
    nan = _fake_checkpoint(newer / "last.ckpt", step=12, weight=float("nan"))
    _age(tmp_path / "t/runs/2026-01-01_00-00-00/checkpoints/last.ckpt", 100)
    with pytest.raises(ConfigError, match=rf"the newest run .*2026-01-02_00-00-00 has no intact checkpoint to resume "
                                          rf"\({nan}: the training checkpoint holds NaN or infinite weights \(w\)"):
        find_last_checkpoint(tmp_path, "t")


def test_read_run_record_names_the_file_and_the_reason(tmp_path):
    foreign = tmp_path / "decoder.ckpt"
    torch.save({"genkit": {"kind": "reshuffle-decoders"}, "state_dict": {"w": torch.ones(1)}}, foreign)
    with pytest.raises(CheckpointError, match=f"{foreign}: not a genkit-train checkpoint \\(no global_step\\)"):
        read_run_record(foreign)
    evil = tmp_path / "evil.ckpt"
    torch.save({"global_step": 3, "state_dict": {}, "x": argparse.Namespace(a=1)}, evil)
    with pytest.raises(CheckpointError, match=f"{evil}: holds objects that cannot be loaded safely"):
        read_run_record(evil)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{text}: not a PyTorch checkpoint"):
        read_run_record(text)


@pytest.mark.parametrize("train", ["true", "false"])
def test_genkit_train_refuses_a_foreign_or_hostile_checkpoint_in_one_line(tmp_path, train):
    from helpers import run_cli

    from test_train import SMALL

    evil = tmp_path / "evil.ckpt"
    torch.save({"global_step": 3, "state_dict": {}, "x": argparse.Namespace(a=1)}, evil)
    proc = run_cli(["genkit-train", f"ckpt_path={evil}", f"train={train}", "logger=csv", f"paths.log_dir={tmp_path}",
                    *SMALL], tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"genkit-train: error: {evil}: holds objects that cannot be loaded safely")
    assert proc.stderr.strip().count("\n") == 0 and "resuming from" not in proc.stdout
    assert not list((tmp_path / "parser_synthetic" / "runs").glob("*"))  # no empty run folder

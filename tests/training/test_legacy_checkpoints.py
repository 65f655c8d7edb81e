"""Checkpoints written by genkit 0.2 (main 5e1479f, before the package moved into layers) keep loading and resuming.

``tests/fixtures/parser_v0_2.ckpt`` was written by that version's ``genkit-train experiment=parser_synthetic`` with
the overrides below; its run record names 0.2's module paths (``genkit.optim``, ``genkit.callbacks``)."""

import json
from pathlib import Path

import torch

from helpers import run_cli

FIXTURE = Path(__file__).parents[1] / "fixtures" / "parser_v0_2.ckpt"
OVERRIDES = ["experiment=parser_synthetic", "data.dataset.n=8", "data.image_size=32", "model.base_channels=4",
             "logger=csv", "test=false", "trainer.max_epochs=-1"]


def test_the_fixture_names_the_old_module_paths():
    record = json.dumps(torch.load(FIXTURE, map_location="cpu", weights_only=False)["genkit_run"], default=str)
    assert "genkit.optim.cosine_schedule" in record and "genkit.callbacks.preemption" in record


def test_a_v0_2_parser_checkpoint_loads_and_parses():
    from genkit import load_parser

    parser = load_parser(FIXTURE)
    with torch.no_grad():
        logits = parser(torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 11, 32, 32) and torch.isfinite(logits).all()


def test_a_v0_2_checkpoint_resumes_with_the_same_config(tmp_path):
    out = run_cli(["genkit-train", *OVERRIDES, f"ckpt_path={FIXTURE}", "trainer.max_steps=5",
                   f"paths.log_dir={tmp_path}"], tmp_path)
    assert "finished at step 5 " in out.stdout
    assert "resume_force" not in out.stdout + out.stderr  # no config change was reported against the old paths

"""genkit-train: the Hydra entry point end to end (fast_dev_run, evaluation, resume, errors)."""

import json
import re
from pathlib import Path

import pytest
import torch

from helpers import run_cli

from genkit.core.errors import ConfigError
from genkit.training.entry import compose, run

SMALL = ["experiment=parser_synthetic", "data.dataset.n=8", "data.image_size=32", "model.base_channels=4",
         "model.depth=2", "callbacks.image_grid.every_n_steps=1"]


def _runs(tmp_path, task="parser_synthetic"):
    return sorted((tmp_path / task / "runs").iterdir())


def _tested_checkpoint(stdout: str) -> str:
    m = re.search(r"tested:\s+(\S+)", stdout)
    assert m, f"the summary names the checkpoint that was tested:\n{stdout[-2000:]}"
    return m.group(1)


def test_fast_dev_run_offline_prints_each_log_line_once(tmp_path):
    proc = run_cli(["genkit-train", "trainer.fast_dev_run=true", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    assert "finished at step 1" in proc.stdout
    runs = _runs(tmp_path)
    assert len(runs) == 1
    assert (runs[0] / ".hydra" / "config.yaml").exists()
    assert not list(runs[0].glob("checkpoints/*.ckpt")), "fast_dev_run writes no checkpoint"
    output = proc.stdout + proc.stderr
    for line in ("Seed set to 0", "GPU available:", "Running in `fast_dev_run` mode"):
        assert output.count(line) == 1, f"{line!r} printed {output.count(line)} times"
    assert "wandb:" not in proc.stderr  # WANDB_SILENT (set by the tests) silences W&B


# ------------------------------------------------------------------------------------- evaluation (#10.1)
def test_fit_tests_the_best_checkpoint_and_train_false_evaluates_the_named_one(tmp_path):
    """After a fit, `test` uses the best checkpoint of the monitored metric; `train=false ckpt_path=X` tests X."""
    fit = run_cli(["genkit-train", "trainer.max_epochs=3", "logger=csv", "callbacks.model_checkpoint.monitor=val/miou",
                   "callbacks.model_checkpoint.mode=max", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    run = _runs(tmp_path)[0]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    state = next(v for v in last["callbacks"].values() if "best_model_path" in v)
    best = Path(state["best_model_path"])
    assert best.is_file() and best.name != "last.ckpt"
    assert Path(_tested_checkpoint(fit.stdout)) == best
    fit_metrics = json.loads((run / "metrics.json").read_text())["metrics"]

    # the evaluation entry: only the data overrides are given; the model comes from the checkpoint
    ev = run_cli(["genkit-train", "experiment=parser_synthetic", "data.dataset.n=8", "data.image_size=32",
                  "train=false", f"ckpt_path={best}", "logger=csv", f"paths.log_dir={tmp_path}"], tmp_path)
    assert Path(_tested_checkpoint(ev.stdout)) == best
    ev_metrics = json.loads((_runs(tmp_path)[1] / "metrics.json").read_text())["metrics"]
    assert ev_metrics["test/miou"] == pytest.approx(fit_metrics["test/miou"], abs=1e-6)
    assert ev_metrics["test/loss"] == pytest.approx(fit_metrics["test/loss"], abs=1e-6)


def test_train_false_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="train=false evaluates a checkpoint: give ckpt_path="):
        run(compose(["train=false", "logger=csv", f"paths.log_dir={tmp_path}", *SMALL], output_dir=tmp_path / "run"))


# ---------------------------------------------------------------------------------------- errors (#10.4)
def test_error_while_instantiating_prints_genkit_message_and_exits_2(tmp_path):
    proc = run_cli(["genkit-train", "model.input_range=sideways", "logger=csv", f"paths.log_dir={tmp_path}", *SMALL],
                   tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "genkit-train: error: model.input_range must be 'unit' ([0, 1]) or 'symmetric' ([-1, 1]), got 'sideways'" in proc.stderr
    assert "InstantiationException" not in proc.stderr and "\\n" not in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------- resume (#10.2)
def _fake_checkpoint(path: Path, step: int, fast_dev_run: bool = False, lr: float = 0.01,
                     weight: float = 1.0) -> Path:
    from genkit.training.entry import RUN_KEY

    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"task_name": "t", "trainer": {"fast_dev_run": fast_dev_run, "max_epochs": 1},
              "model": {"optimizer": {"lr": lr}}, "data": {"image_size": 32}}
    torch.save({"global_step": step, "state_dict": {"w": torch.full((2,), weight)}, RUN_KEY: {"config": config}},
               path)
    return path


def test_last_checkpoint_resolves_within_the_tasks_own_runs(tmp_path):
    import os
    import time

    from genkit.training.entry import find_last_checkpoint

    good = _fake_checkpoint(tmp_path / "t/runs/2026-01-01_00-00-00/checkpoints/last.ckpt", step=4)
    skipped = [_fake_checkpoint(tmp_path / "t/runs/2026-01-01_00-00-01/checkpoints/last.ckpt", 1, fast_dev_run=True),
               _fake_checkpoint(tmp_path / "t/runs/2026-01-01_00-00-02/checkpoints/last.ckpt", 0),  # sanity only
               _fake_checkpoint(tmp_path / "t/multiruns/2026-01-01_00-00-03/0/checkpoints/last.ckpt", 1, lr=0.1),
               _fake_checkpoint(tmp_path / "other/runs/2026-01-01_00-00-04/checkpoints/last.ckpt", 9)]
    now = time.time()
    for i, p in enumerate([good, *skipped]):
        os.utime(p, (now + i, now + i))  # every other candidate is newer
    assert find_last_checkpoint(tmp_path, "t") == good
    # a sweep job resumes the same job of an earlier sweep; a requeued job its own folder first
    assert find_last_checkpoint(tmp_path, "t", sweep_job=0) == skipped[2]
    own = _fake_checkpoint(tmp_path / "t/runs/now/checkpoints/last.ckpt", step=2)
    os.utime(own, (now - 100, now - 100))
    assert find_last_checkpoint(tmp_path, "t", output_dir=own.parent.parent) == own


def test_resume_prints_the_file_and_changed_keys_and_refuses_a_different_model(tmp_path):
    run_cli(["genkit-train", "trainer.max_epochs=1", "logger=csv", "test=false", f"paths.log_dir={tmp_path}", *SMALL],
            tmp_path)
    last = _runs(tmp_path)[0] / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"different model/data config \(model\.optimizer\.lr: 0\.01 -> 0\.5\); "
                                          r"resume with the checkpoint's values, or add resume_force=true"):
        run(compose(["trainer.max_epochs=2", "ckpt_path=last", "model.optimizer.lr=0.5", "logger=csv", "test=false",
                     f"paths.log_dir={tmp_path}", *SMALL], output_dir=tmp_path / "refused"))
    forced = run_cli(["genkit-train", "trainer.max_epochs=2", "ckpt_path=last", "model.optimizer.lr=0.5",
                      "resume_force=true", "logger=csv", "test=false", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    assert f"resuming from {last}" in forced.stdout
    assert re.search(r"model\.optimizer\.lr: 0\.01 -> 0\.5", forced.stdout)
    assert re.search(r"trainer\.max_epochs: 1 -> 2", forced.stdout)
    assert "finished at step 4 " in forced.stdout


def test_resume_without_previous_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path=last: no checkpoint of a resumable run under .*parser_synthetic"):
        run(compose(["ckpt_path=last", f"paths.log_dir={tmp_path}", *SMALL], output_dir=tmp_path / "run"))

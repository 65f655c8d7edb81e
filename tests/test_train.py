"""genkit-train: the Hydra entry point end to end (fast_dev_run, resume, errors)."""

import json

from helpers import run_cli

SMALL = ["experiment=parser_synthetic", "data.n_synthetic=8", "data.image_size=32", "model.base_channels=4",
         "model.depth=2", "callbacks.image_grid.every_n_steps=1"]


def test_fast_dev_run_offline(tmp_path):
    proc = run_cli(["genkit-train", "trainer.fast_dev_run=true", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    assert "finished at step 1" in proc.stdout
    runs = list((tmp_path / "parser_synthetic" / "runs").iterdir())
    assert len(runs) == 1
    assert (runs[0] / ".hydra" / "config.yaml").exists()


def test_resume_continues_from_saved_step_and_same_wandb_run(tmp_path):
    first = run_cli(["genkit-train", "trainer.max_epochs=1", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    assert "finished at step 2 " in first.stdout  # 6 train faces / batch 4 -> 2 steps per epoch
    second = run_cli(["genkit-train", "trainer.max_epochs=2", "ckpt_path=last", f"paths.log_dir={tmp_path}", *SMALL],
                     tmp_path)
    assert "finished at step 4 " in second.stdout
    run_dirs = sorted((tmp_path / "parser_synthetic" / "runs").iterdir())
    info = [json.loads((d / "run_info.json").read_text()) for d in run_dirs]
    assert info[1]["resumed_from"].endswith("last.ckpt")
    assert info[0]["wandb_id"] and info[0]["wandb_id"] == info[1]["wandb_id"]
    assert json.loads((run_dirs[1] / "metrics.json").read_text())["step"] == 4
    # both W&B offline folders belong to the same run id
    ids = {p.name.rsplit("-", 1)[1] for d in run_dirs for p in (d / "wandb").glob("offline-run-*")}
    assert ids == {info[0]["wandb_id"]}


def test_resume_without_previous_run_is_a_clear_error(tmp_path):
    proc = run_cli(["genkit-train", "ckpt_path=last", f"paths.log_dir={tmp_path}", *SMALL], tmp_path, check=False)
    assert proc.returncode != 0
    assert "no last.ckpt" in proc.stderr and "Traceback" not in proc.stderr

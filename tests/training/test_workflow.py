"""The researcher's workflow: sweeps with a summary, DDP on CPU, kill-and-resume, offline W&B with images."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers import BIN, run_cli

SMALL = ["experiment=parser_synthetic", "data.dataset.n=8", "data.image_size=32", "model.base_channels=4",
         "model.depth=2"]


def test_multirun_2x2_gives_four_job_folders_a_summary_and_one_wandb_group(tmp_path):
    run_cli(["genkit-train", "-m", "model.optimizer.lr=0.001,0.002", "seed=0,1", "trainer.max_epochs=1",
             "test=false", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    sweeps = list((tmp_path / "parser_synthetic" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    rows = json.loads((sweeps[0] / "sweep_summary.json").read_text())
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {r["swept"] for r in rows} == {f"model.optimizer.lr={lr} seed={s}" for lr in ("0.001", "0.002")
                                          for s in (0, 1)}
    assert all("val/miou" in r for r in rows)
    assert (sweeps[0] / "sweep_summary.csv").read_text().count("\n") == 5
    # W&B: the sweep's jobs share a group, each has its own name, job_type "sweep"
    records = [_offline_run(job) for job in jobs]
    assert {r["group"] for r in records} == {f"parser_synthetic-sweep-{sweeps[0].name}"}
    assert [r["name"] for r in records] == [f"parser_synthetic-{sweeps[0].name}-job{i}" for i in range(4)]
    assert {r["job_type"] for r in records} == {"sweep"}


@pytest.mark.slow
def test_two_process_cpu_ddp_writes_one_folder_with_synced_metrics(tmp_path):
    proc = run_cli(["genkit-train", "trainer=ddp_cpu", "trainer.max_steps=2", "logger=csv",
                    f"paths.log_dir={tmp_path}", *SMALL], tmp_path, timeout=400)
    runs = list((tmp_path / "parser_synthetic" / "runs").iterdir())
    assert len(runs) == 1, f"one output folder for all ranks, got {runs}"
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["step"] == 2
    assert 0.0 <= metrics["metrics"]["val/miou"] <= 1.0
    assert "finished at step 2" in proc.stdout


@pytest.mark.slow
def test_run_killed_between_checkpoints_resumes_to_the_same_final_step(tmp_path):
    args = [str(BIN / "genkit-train"), "trainer.max_steps=40", "trainer.max_epochs=-1", "logger=csv",
            "callbacks.model_checkpoint.every_n_train_steps=2", "callbacks.model_checkpoint.every_n_epochs=null",
            "test=false", f"paths.log_dir={tmp_path}", *SMALL]
    env = {**os.environ, "WANDB_MODE": "offline", "GENKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    last_ckpt, step = None, 0
    while time.time() < deadline and step < 4:
        found = list((tmp_path / "parser_synthetic").glob("runs/*/checkpoints/last.ckpt"))
        if found:  # written atomically: whatever is there is a complete checkpoint
            last_ckpt = found[0]
            step = torch.load(last_ckpt, map_location="cpu", weights_only=False)["global_step"]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last_ckpt is not None and step >= 4, "the first run never reached step 4"
    last = torch.load(last_ckpt, map_location="cpu", weights_only=False)
    assert 4 <= last["global_step"] < 40, "the first run must have been killed mid-way"
    out = run_cli(["genkit-train", "trainer.max_steps=40", "trainer.max_epochs=-1", "logger=csv", "ckpt_path=last",
                   "test=false", f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    assert "finished at step 40 " in out.stdout


def _weights(ckpt, step: int = 12):
    data = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert data["global_step"] == step
    return data["state_dict"]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_143_and_the_resume_ends_with_the_uninterrupted_weights(tmp_path):
    # 6 training faces in batches of 2: 3 steps per epoch; the signal arrives after step 5 (mid-epoch 1)
    common = ["trainer.max_steps=12", "trainer.max_epochs=-1", "data.batch_size=2", "logger=csv", "test=false", *SMALL]
    run_cli(["genkit-train", *common, f"paths.log_dir={tmp_path / 'ref'}"], tmp_path)
    reference = _weights(next((tmp_path / "ref").glob("*/runs/*/checkpoints/last.ckpt")))

    env = {"PYTHONPATH": f"{os.environ.get('PYTHONPATH', '')}:{Path(__file__).parents[1]}"}
    stop = ["+callbacks.stop._target_=fixtures.signals.SignalAtStep", "+callbacks.stop.step=5"]
    cut = run_cli(["genkit-train", *common, *stop, f"paths.log_dir={tmp_path}"], tmp_path, env=env, check=False)
    assert cut.returncode == 143, cut.stderr[-3000:]
    saved = next((tmp_path / "parser_synthetic").glob("runs/*/checkpoints/last.ckpt"))
    assert "stopped by SIGTERM at step 5" in cut.stderr and str(saved) in cut.stderr
    assert torch.load(saved, map_location="cpu", weights_only=False)["global_step"] == 5
    assert "finished at step" not in cut.stdout

    resumed = run_cli(["genkit-train", *common, "ckpt_path=last", f"paths.log_dir={tmp_path}"], tmp_path)
    assert "finished at step 12 " in resumed.stdout
    final = _weights(sorted((tmp_path / "parser_synthetic").glob("runs/*/checkpoints/last.ckpt"))[-1])
    assert final.keys() == reference.keys()
    different = [k for k in reference if not torch.equal(final[k], reference[k])]
    assert not different, f"resumed weights differ from the uninterrupted run's: {different[:5]}"


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    env = {"PYTHONPATH": f"{os.environ.get('PYTHONPATH', '')}:{Path(__file__).parents[1]}"}
    proc = run_cli(["genkit-train", "trainer.max_steps=12", "trainer.max_epochs=-1", "logger=csv", "test=false",
                    "+callbacks.stop._target_=fixtures.signals.SignalAtStep", "+callbacks.stop.step=3",
                    f"+callbacks.stop.signum={int(signal.SIGINT)}", f"paths.log_dir={tmp_path}", *SMALL], tmp_path,
                   env=env, check=False)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "stopped by SIGINT at step 3" in proc.stderr
    saved = next((tmp_path / "parser_synthetic").glob("runs/*/checkpoints/last.ckpt"))
    assert torch.load(saved, map_location="cpu", weights_only=False)["global_step"] == 3


def _offline_run(run_dir):
    from fixtures.wandb_records import read_offline_run

    folders = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    return read_offline_run(folders[0])


FLAT_DUPLICATES = {"base_channels", "depth", "lr", "schema", "image_size", "batch_size", "n_synthetic", "source"}


def test_offline_wandb_run_names_groups_config_once_lr_panel_images_and_a_linked_resume(tmp_path):
    """Read what the offline W&B runs recorded (their .wandb files, decoded with wandb's protobuf messages)."""
    common = ["callbacks.image_grid.every_n_steps=1", "trainer.log_every_n_steps=1", "test=false",
              f"paths.log_dir={tmp_path}", *SMALL]
    run_cli(["genkit-train", "trainer.max_epochs=1", *common], tmp_path)
    resumed = run_cli(["genkit-train", "trainer.max_epochs=2", "ckpt_path=last", *common], tmp_path)
    assert "finished at step 4 " in resumed.stdout  # 8 training faces in batches of 4: 2 steps per epoch
    first_dir, second_dir = sorted((tmp_path / "parser_synthetic" / "runs").iterdir())
    info = [json.loads((d / "run_info.json").read_text()) for d in (first_dir, second_dir)]
    assert info[1]["resumed_from"].endswith("last.ckpt") and info[1]["resumed_wandb_id"] == info[0]["wandb_id"]
    first, second = _offline_run(first_dir), _offline_run(second_dir)

    assert first["name"].startswith("parser_synthetic-") and first["name"] != second["name"]
    assert first["group"] == second["group"] == "parser_synthetic"
    assert first["job_type"] == second["job_type"] == "train"
    assert set(first["tags"]) == {"parser", "synthetic"}  # no random-weights tag: the parser uses none
    assert first["summary"]["random_weights"] is False
    # the composed config, once: nested groups, no flat copies of the module's arguments
    assert {"model", "data", "trainer", "callbacks", "seed", "task_name"} <= set(first["config"])
    assert not FLAT_DUPLICATES & set(first["config"]), FLAT_DUPLICATES & set(first["config"])
    assert first["config"]["model"]["optimizer"]["lr"] == 0.01
    assert "lr" in first["history_keys"] and not any(k.startswith("lr-") for k in first["history_keys"])
    assert list((first_dir / "wandb").glob("offline-run-*/files/media/images/**/*.png")), "image grids are logged"
    assert list((first_dir / "images").glob("*.png"))
    # offline W&B cannot append to a run: the resume is a new run that names the one it continues
    assert second["id"] != first["id"]
    assert second["config"]["resumed_from"]["wandb_id"] == first["id"]
    assert second["summary"]["resumed_from"] == first["id"]
    assert "resumed_from" not in first["config"]


def test_runs_with_random_weights_are_tagged_in_wandb(tmp_path, monkeypatch):
    from genkit.core import weights
    from genkit.training.entry import compose, run

    # the registry says a pretrained network ran with random weights (as weights.allow_random=true makes it)
    monkeypatch.setattr(weights, "_PROVENANCE", {"vgg19": {"file": None, "sha256": None, "random": True}})
    cfg = compose([*SMALL, "trainer.max_steps=1", "trainer.max_epochs=-1", "test=false",
                   "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                   "logger.wandb.silent=true"], output_dir=tmp_path / "run")
    run(cfg)
    record = _offline_run(tmp_path / "run")
    assert "random-weights" in record["tags"] and record["summary"]["random_weights"] is True


def test_optuna_search_runs_trials_and_reports_best_parameters(tmp_path):
    proc = run_cli(["genkit-train", "-m", "hparams_search=parser_optuna", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.sampler.n_startup_trials=2", "trainer.max_epochs=1", "logger=csv", "test=false",
                    f"paths.log_dir={tmp_path}", *SMALL], tmp_path)
    sweep = next((tmp_path / "parser_synthetic" / "multiruns").iterdir())
    assert (sweep / "optimization_results.yaml").exists()
    assert "Best parameters" in proc.stdout + proc.stderr
    rows = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(rows) == 2 and all("model.optimizer.lr=" in r["swept"] for r in rows)


def test_slurm_launcher_config_follows_the_trainer():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from genkit.training.entry import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "trainer=multinode", "trainer.devices=4",
                                          "experiment=parser_synthetic"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("SlurmLauncher")
    # the SLURM geometry is read from the trainer: one task per GPU on every node
    assert OmegaConf.select(cfg, "trainer.num_nodes") == 2
    assert cfg.hydra.launcher.nodes == 2 and cfg.hydra.launcher.tasks_per_node == 4

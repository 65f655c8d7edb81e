"""The parser experiments through Hydra: genkit-train runs, checkpoints load, the data-set experiments compose."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from genkit.models.parsing import load_parser
from genkit.training.entry import CONF_DIR

BIN = Path(sys.executable).parent


def run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "GENKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(BIN / "genkit-train"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    return proc


def test_fast_dev_run_with_csv_logger(tmp_path):
    proc = run_train(["experiment=parser_synthetic", "trainer.fast_dev_run=true", "logger=csv",
                      f"paths.log_dir={tmp_path}"], tmp_path)
    assert "parser_synthetic finished at step 1" in proc.stdout
    assert "val/miou=" in proc.stdout and "val/pixel_acc=" in proc.stdout


def test_trained_checkpoint_loads_for_parsing(tmp_path):
    run_train(["experiment=parser_synthetic", "data.dataset.n=8", "data.image_size=32", "model.base_channels=4",
               "model.depth=2", "trainer.max_steps=2", "logger=csv", "test=false",
               "callbacks.image_grid.every_n_steps=1", f"paths.log_dir={tmp_path}"], tmp_path)
    run = next((tmp_path / "parser_synthetic" / "runs").iterdir())
    net = load_parser(run / "checkpoints" / "last.ckpt", expected_schema="helen11")
    assert net.num_classes == 11 and net.image_size == 32 and net.depth == 2
    grids = list((run / "images").glob("*.png"))
    assert grids, "photo | truth | prediction grids are written"
    metrics = (next((run / "csv").iterdir()) / "metrics.csv").read_text().splitlines()[0]
    assert "val/miou" in metrics and "val/pixel_acc" in metrics and "val/iou/left_eye" in metrics


@pytest.mark.parametrize("experiment, schema, source", [("parser_synthetic", "helen11", "SyntheticFaces"),
                                                        ("parser_helen", "helen11", "HelenFaces"),
                                                        ("parser_celebamask", "celebamask19", "CelebAMaskFaces")])
def test_experiments_compose(experiment, schema, source):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"])
    assert cfg.task_name == experiment and cfg.optimized_metric == "val/miou"
    assert cfg.data.dataset._target_ == f"genkit.data.sources.{source}" and cfg.data.target_schema == schema
    assert cfg.model._target_ == "genkit.models.parsing.module.ParserModule"
    assert cfg.model.schema == schema and cfg.model.image_size == cfg.data.image_size
    assert cfg.model.input_range == cfg.data.value_range
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW" and cfg.model.optimizer._partial_
    assert cfg.callbacks.model_checkpoint.monitor == "val/miou" and cfg.callbacks.model_checkpoint.mode == "max"
    if source != "SyntheticFaces":
        assert cfg.data.dataset.root.endswith(experiment.split("_")[1]) and cfg.data.image_size == 256

"""Training on your own folder (images/ + masks/ + schema.json): the folder experiments compose as they are and a
short run keeps a learning rate (the portrait paper's per-epoch schedule would be at zero after a few dozen steps on
a small folder)."""

import re

import pytest

from helpers import run_cli

TINY_PORTRAIT = ["data.image_size=32", "model.losses.vgg=0", "model.generator.latent_dim=16",
                 "model.generator.feature_channels=8", "model.generator.encoder_channels=8",
                 "model.generator.encoder_max_channels=16", "model.generator.ngf=8", "model.generator.n_res_blocks=1",
                 "model.generator.background_channels=8", "model.discriminator.base_channels=8",
                 "model.discriminator.n_layers=2", "model.validation.lpips=false", "model.ema=null"]


def _final(name: str, stdout: str) -> float:
    return float(re.search(rf"{re.escape(name)}=([0-9.e+-]+)", stdout).group(1))


@pytest.mark.slow
def test_portrait_folder_trains_60_steps_with_a_learning_rate_left(tmp_path):
    from genkit.data.synthetic import write_synthetic_folder

    folder = write_synthetic_folder(tmp_path / "faces", n=16, size=32, seed=3, progress=False)
    out = run_cli(["genkit-train", "experiment=portrait_folder", f"data.dataset.root={folder}", "trainer.max_steps=60",
                   "weights.allow_random=true", "logger=csv", "test=false", f"paths.log_dir={tmp_path}",
                   *TINY_PORTRAIT], tmp_path, timeout=600)
    assert "portrait_folder finished at step 60 " in out.stdout
    lr = _final("lr/G", out.stdout)
    assert lr >= 0.01 * 2e-4 * 0.99, lr  # cosine to 1% of Adam's 2e-4 at the last step, never 0


def test_parser_folder_runs_on_a_genkit_data_synth_folder(tmp_path):
    from genkit.data.synthetic import write_synthetic_folder

    folder = write_synthetic_folder(tmp_path / "faces", n=10, size=32, seed=4, progress=False)
    out = run_cli(["genkit-train", "experiment=parser_folder", f"data.dataset.root={folder}", "trainer.max_steps=3",
                   "data.image_size=32", "model.base_channels=4", "model.depth=2", "data.batch_size=2", "logger=csv",
                   "test=false", f"paths.log_dir={tmp_path}"], tmp_path, timeout=300)
    assert "parser_folder finished at step 3 " in out.stdout

"""The portrait experiment through the real entry points: genkit-train (2-process DDP on CPU) then genkit edit."""

import pytest
from helpers import run_cli

from genkit.core.metadata import read_metadata

SMALL = ["experiment=portrait_synthetic", "weights.allow_random=true", "data.dataset.n=16", "data.image_size=32",
         "model.losses.vgg=0", "model.validation.lpips=false", "logger=csv", "test=false",
         "callbacks.image_grid.every_n_steps=1"]


@pytest.mark.slow
def test_train_with_ddp_then_edit_with_the_checkpoint(tmp_path):
    # 16 training faces over 2 processes, batch 4: 2 iterations per epoch; both discriminators and the frozen
    # D during the G step leave parameters without gradients each iteration (DDP must be told)
    proc = run_cli(["genkit-train", "trainer=ddp_cpu", "trainer.max_epochs=1", f"paths.log_dir={tmp_path}", *SMALL],
                   tmp_path)
    assert "finished at step 2 " in proc.stdout
    run_dir = next((tmp_path / "portrait_synthetic" / "runs").iterdir())
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and list((run_dir / "images").glob("val_step*.png"))

    run_cli(["genkit", "data", "synth", "--out", str(tmp_path / "faces"), "-n", "2", "--size", "48"], tmp_path)
    faces = tmp_path / "faces"
    out = tmp_path / "edit.png"
    proc = run_cli(["genkit", "edit", "--checkpoint", str(ckpt), "--target", str(faces / "images/synth_00000.png"),
                    "--mask", str(faces / "masks/synth_00000.png"),
                    "--hair", f"{faces / 'images/synth_00001.png'}:{faces / 'masks/synth_00001.png'}",
                    "-o", str(out)], tmp_path)
    assert "wrote" in proc.stdout and "SYNTHETIC" in proc.stdout
    meta = read_metadata(out)
    assert meta["operation"] == "transfer" and meta["image_size"] == 32 and meta["training"]["synthetic_data"]
    assert meta["training"]["random_weights"] is False  # VGG and LPIPS were off: nothing random was used

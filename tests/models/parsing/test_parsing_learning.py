"""A real learning test: a short seeded CPU run on synthetic faces beats the untrained network clearly."""

import time

import lightning as L
import numpy as np
import pytest
import torch

from genkit.cli import main
from genkit.data.datamodules import FaceDataModule
from genkit.data.synthetic import write_synthetic_folder
from genkit.core.reading import read_label_map
from genkit.models.parsing.module import ParserModule

STEPS = 240


@pytest.fixture
def one_thread():
    # one thread: reproducible numbers, and no OpenMP spin-waiting when the 2 cores are shared
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_short_training_clearly_beats_untrained_network(one_thread, tmp_path):
    L.seed_everything(0)
    dm = FaceDataModule(image_size=64, batch_size=8, n_synthetic=256, seed=0, hflip=True, scale_jitter=0.05)
    model = ParserModule(schema="helen11", image_size=64, base_channels=32, depth=3, lr=1e-2)
    kw = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0)
    untrained = L.Trainer(**kw).validate(model, datamodule=dm, verbose=False)[0]

    start = time.perf_counter()
    trainer = L.Trainer(max_steps=STEPS, check_val_every_n_epoch=10_000, **kw)
    trainer.fit(model, datamodule=dm)
    elapsed = time.perf_counter() - start
    trained = L.Trainer(**kw).validate(model, datamodule=dm, verbose=False)[0]

    print(f"untrained mIoU {untrained['val/miou']:.3f} -> trained {trained['val/miou']:.3f} "
          f"(pixel acc {untrained['val/pixel_acc']:.3f} -> {trained['val/pixel_acc']:.3f}) "
          f"after {STEPS} steps in {elapsed:.1f} s")
    assert trainer.global_step == STEPS
    assert untrained["val/miou"] < 0.15
    assert trained["val/miou"] > 0.55
    assert trained["val/miou"] > untrained["val/miou"] + 0.4
    assert trained["val/pixel_acc"] > 0.9
    # the small parts are learned, not only background/skin/hair
    small = [trained[f"val/iou/{c}"] for c in ("left_eye", "right_eye", "nose", "upper_lip", "lower_lip")]
    assert sum(small) / len(small) > 0.3

    # the trained checkpoint, used through `genkit parse` on unseen faces, recovers their masks
    trainer.save_checkpoint(tmp_path / "parser.ckpt")
    faces = write_synthetic_folder(tmp_path / "faces", n=3, size=64, seed=123, progress=False)
    assert main(["parse", str(faces / "images"), "--checkpoint", str(tmp_path / "parser.ckpt"),
                 "-o", str(tmp_path / "parsed")]) == 0
    for truth_file in sorted((faces / "masks").glob("*.png")):
        truth = read_label_map(truth_file)
        parsed = read_label_map(tmp_path / "parsed" / "masks" / truth_file.name, num_classes=11)
        assert np.mean(truth == parsed) > 0.9, truth_file.name

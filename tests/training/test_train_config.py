"""Config groups compose and their cheap parts instantiate; the pieces behind exact resumes and LR panels."""

import random

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from genkit.training.entry import CONF_DIR, instantiate_group

PARSER = ["experiment=parser_synthetic"]


def _compose(overrides, hydra_config=False):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_config)


def _instantiate(node, **kwargs):
    return hydra.utils.instantiate(node, _convert_="partial", **kwargs)


# ------------------------------------------------------------------------------------------------- debug
@pytest.mark.parametrize("option, expected", [
    ("default", {"max_epochs": 1, "fast_dev_run": False}),
    ("fdr", {"fast_dev_run": 1}),
    ("overfit", {"overfit_batches": 1, "max_epochs": 20}),
    ("limit", {"limit_train_batches": 3, "limit_val_batches": 2, "limit_test_batches": 2, "max_epochs": 3})])
def test_debug_options_compose_and_configure_the_trainer(option, expected, tmp_path):
    cfg = _compose([*PARSER, f"debug={option}", f"paths.output_dir={tmp_path}", f"paths.log_dir={tmp_path}"],
                   hydra_config=True)
    assert "/parser_synthetic/debug/" in cfg.hydra.run.dir  # never among the runs ckpt_path=last resumes
    assert cfg.task_name == "parser_synthetic" and cfg.data.num_workers == 0
    trainer = _instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    for key, value in expected.items():
        assert getattr(trainer, key) == value, key
    assert cfg.trainer.detect_anomaly is True


# -------------------------------------------------------------------------------------------------- data
@pytest.mark.parametrize("option, source", [("faces_synthetic", "SyntheticFaces"), ("faces_folder", "FolderFaces"),
                                            ("helen", "HelenFaces"), ("celebamask", "CelebAMaskFaces")])
def test_face_data_options_share_the_base_and_pick_the_dataset_by_target(option, source, tmp_path):
    from genkit.data import sources
    from genkit.data.datamodules import FaceDataModule

    cfg = _compose([f"data={option}", f"paths.output_dir={tmp_path}"])
    base = OmegaConf.load(f"{CONF_DIR}/data/faces_base.yaml")
    assert cfg.data._target_ == base._target_ and set(base) - {"dataset"} <= set(cfg.data)
    assert cfg.data.dataset._target_ == f"genkit.data.sources.{source}"
    dm = _instantiate(cfg.data)
    assert isinstance(dm, FaceDataModule) and isinstance(dm.dataset, getattr(sources, source))
    assert dm.hparams.source == getattr(sources, source).name


def test_face_data_base_alone_asks_for_a_dataset(tmp_path):
    from omegaconf.errors import MissingMandatoryValue

    cfg = _compose(["data=faces_base", f"paths.output_dir={tmp_path}"])
    with pytest.raises(MissingMandatoryValue):
        _instantiate(cfg.data)


def test_synthetic_dataset_target_builds_the_splits(tmp_path):
    cfg = _compose([*PARSER, "data.dataset.n=8", "data.image_size=32", f"paths.output_dir={tmp_path}"])
    dm = _instantiate(cfg.data)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 32, 32)


# ------------------------------------------------------------------------------- model optimiser/scheduler
def test_parser_optimizer_and_scheduler_are_partial_targets_with_an_lr_panel(tmp_path):
    from types import SimpleNamespace

    from genkit.nn.schedules import lr_scheduler_config

    cfg = _compose([*PARSER, "model.optimizer.lr=0.02", f"paths.output_dir={tmp_path}"])
    model = _instantiate(cfg.model)
    opt = model.optimizer_factory(params=model.net.parameters())
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 0.02
    config = lr_scheduler_config(model.scheduler_factory, opt, SimpleNamespace(estimated_stepping_batches=10))
    assert config["name"] == "lr" and config["interval"] == "step"
    for _ in range(10):
        opt.step()
        config["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * 0.01)  # cosine to 1% at the end of training
    # plain data only in checkpoints: the factories as they run, not the shortcut arguments
    assert model.hparams["optimizer"] == {"_target_": "torch.optim.adamw.AdamW", "_partial_": True, "lr": 0.02,
                                          "weight_decay": 1.0e-4}
    assert "lr" not in model.hparams
    constant = _instantiate(_compose([*PARSER, "model.scheduler=null", f"paths.output_dir={tmp_path}"]).model)
    assert constant.scheduler_factory is None


# --------------------------------------------------------------------------------- trainer, callbacks, logger
def test_trainer_plugin_callbacks_and_logger_instantiate(tmp_path):
    from genkit.training.callbacks.atomic_checkpoint import AtomicCheckpointIO
    from genkit.training.callbacks.preemption import PreemptibleCheckpoint
    from genkit.training.callbacks.resume import ResumeState

    cfg = _compose([*PARSER, f"paths.output_dir={tmp_path}"])
    callbacks = instantiate_group(cfg.callbacks)
    assert {PreemptibleCheckpoint, ResumeState} <= {type(c) for c in callbacks}
    trainer = _instantiate(cfg.trainer, callbacks=callbacks, logger=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert trainer.checkpoint_callback.monitor == "val/miou" and trainer.checkpoint_callback.mode == "max"
    (logger,) = instantiate_group(cfg.logger, {"wandb": {"name": "n", "group": "g", "job_type": "train"}})
    assert logger._wandb_init["group"] == "g" and logger._wandb_init["job_type"] == "train"
    assert logger._log_model is False


# -------------------------------------------------------------------------------- exact-resume data order
def test_epoch_sampler_order_is_seeded_and_a_resume_skips_what_was_trained():
    from genkit.data.sampling import EpochSampler

    data = list(range(10))
    a, b = EpochSampler(data, seed=3), EpochSampler(data, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    full = list(a)
    assert full == list(b) and sorted(i for i, _ in full) == data
    b.resume(epoch=2, n_samples=4)
    assert list(b) == full[4:]
    assert list(b) == full  # the skip applies to one pass only
    a.set_epoch(3)
    assert list(a) != full


def test_seeded_samples_draw_per_sample_and_leave_the_global_random_state_alone():
    from genkit.data.sampling import SeededSamples

    class Draw:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return random.random()

    ds = SeededSamples(Draw(), seed=0)
    random.seed(123)
    before = random.getstate()
    first = [ds[(i, 1000 + i)] for i in range(4)]
    assert random.getstate() == before
    assert first == [ds[(i, 1000 + i)] for i in range(4)] and len(set(first)) == 4
    assert ds[2] == ds[2]  # a plain index (Lightning's overfit sampler) is seeded too

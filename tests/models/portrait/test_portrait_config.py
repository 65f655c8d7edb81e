"""The portrait model's configuration: one block per class (networks, losses, optimisation), plain
hyper-parameters in checkpoints, clear errors, LR panels named lr/G and lr/D, and the docs' overrides compose."""

import functools
import re
from pathlib import Path

import hydra
import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import OmegaConf

from genkit.data.datamodules import FaceDataModule
from genkit.core.errors import CheckpointError, ConfigError
from genkit.models.portrait.config import ParserSettings, TrainingScheme, ValidationSettings
from genkit.models.portrait.ema import WarmupEMA
from genkit.models.portrait.generator import PortraitGenerator
from genkit.models.portrait.losses import LossWeights
from genkit.models.portrait.module import PortraitGAN
from fixtures.tiny_portrait import tiny_config
from genkit.nn.blocks import MultiScaleDiscriminator
from genkit.training.entry import compose

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[3]


def build(overrides=()):
    cfg = compose(["experiment=portrait_synthetic", "weights.allow_random=true", "data.image_size=32",
                   "model.validation.lpips=false", "model.losses.vgg=0", *overrides])
    return cfg, hydra.utils.instantiate(cfg.model, _convert_="partial")


def test_each_block_of_the_config_becomes_its_class():
    cfg, model = build(["model.optimizer_g.lr=1e-3", "model.scheduler.decay_epochs=7"])
    assert OmegaConf.select(cfg, "model._recursive_") is False
    assert type(model.generator) is PortraitGenerator and model.generator.image_size == 32
    assert isinstance(model.d_paired, MultiScaleDiscriminator) and model.d_paired is not model.d_transfer
    assert isinstance(model.losses, LossWeights) and model.losses.vgg == 0
    assert isinstance(model.scheme, TrainingScheme) and isinstance(model.parser_settings, ParserSettings)
    assert isinstance(model.validation_settings, ValidationSettings) and model.validation_settings.lpips is False
    assert isinstance(model.make_optimizer_g, functools.partial) and model.make_optimizer_g.func is torch.optim.Adam
    assert model.make_optimizer_g.keywords == {"lr": 1e-3, "betas": [0.5, 0.999]}
    assert model.make_scheduler.keywords["decay_epochs"] == 7
    assert isinstance(model.generator_ema, WarmupEMA)
    # the sub-configs stay plain values: a checkpoint's hyper-parameters load with weights_only
    assert model.hparams.generator["_target_"].endswith("PortraitGenerator")
    buf = __import__("io").BytesIO()
    torch.save({"hyper_parameters": dict(model.hparams)}, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["hyper_parameters"]["optimizer_g"]["lr"] == 1e-3
    assert model._log_hyperparams is False  # train.py logs the resolved config once


def test_bad_sub_configs_are_named():
    with pytest.raises(ConfigError, match="model.losses: .*unexpected keyword argument 'lambda_vgg'"):
        PortraitGAN(image_size=32, **tiny_config(losses={"lambda_vgg": 1.0}))
    with pytest.raises(ConfigError, match="model.optimizer_g: torch.optim.adam.Adam has no argument lrr"):
        PortraitGAN(image_size=32, **tiny_config(optimizer_g={"lrr": 1.0}, losses={"vgg": 0}))
    with pytest.raises(ConfigError, match="model.generator must not set image_size"):
        PortraitGAN(image_size=32, **tiny_config(generator={"image_size": 64}, losses={"vgg": 0}))
    with pytest.raises(ConfigError, match="model.scheme: swap_probability must be in"):
        PortraitGAN(image_size=32, **tiny_config(scheme={"swap_probability": 2.0}, losses={"vgg": 0}))
    with pytest.raises(ConfigError, match="model.ema._target_: cannot import 'nowhere.EMA'"):
        PortraitGAN(image_size=32, **tiny_config(ema={"_target_": "nowhere.EMA"}, losses={"vgg": 0}))


def test_learning_rates_are_logged_as_lr_G_and_lr_D(tmp_path):
    L.seed_everything(0)
    model = PortraitGAN(image_size=32, **tiny_config(losses={"vgg": 0}, validation={"lpips": False},
                                                     optimizer_d={"lr": 1e-3}))
    monitor = LearningRateMonitor(logging_interval="step")
    from lightning.pytorch.loggers import CSVLogger

    tr = L.Trainer(max_steps=1, accelerator="cpu", logger=CSVLogger(tmp_path), callbacks=[monitor],
                   enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                   enable_checkpointing=False, log_every_n_steps=1)
    tr.fit(model, FaceDataModule(image_size=32, batch_size=2, n_synthetic=4, value_range="symmetric"))
    assert set(monitor.lrs) == {"lr/G", "lr/D"}
    assert monitor.lrs["lr/G"][0] == pytest.approx(2e-4) and monitor.lrs["lr/D"][0] == pytest.approx(1e-3)


def test_checkpoints_of_the_earlier_flat_format_are_refused_clearly(tmp_path):
    from genkit.models.portrait.editor import PortraitEditor

    old = tmp_path / "old.ckpt"
    torch.save({"genkit_portrait": {"format": 1, "generator": {"image_size": 64}, "ema": True},
                "state_dict": {}}, old)
    with pytest.raises(CheckpointError, match="format 1 .*Retrain it"):
        PortraitEditor.from_checkpoint(old)


def test_model_overrides_shown_in_the_docs_name_real_keys():
    """Every ``model.a.b=...`` override in the docs, README and notebooks composes with the portrait experiment."""
    texts = [p.read_text() for p in [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("notebooks/*.ipynb")]]
    keys = set()
    for text in texts:
        if "portrait" not in text:
            continue
        keys |= set(re.findall(r"\bmodel\.((?:generator|discriminator|losses|scheme|optimizer_[gd]|scheduler|ema|"
                               r"parser|validation)\.[a-z_]+)=", text))
    assert len(keys) >= 3
    cfg = compose(["experiment=portrait_synthetic"])
    missing = [k for k in sorted(keys) if OmegaConf.select(cfg.model, k, default="<missing>") == "<missing>"]
    assert not missing, f"docs name model keys the config does not have: {missing}"

"""VGG-mirror decoders, the decoder-training LightningModule, its checkpoints and the Hydra experiment."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from genkit.core.errors import CheckpointError
from genkit.nn.decoder import VGGMirrorDecoder, mirror_ops
from genkit.nn.vgg import VGG19_CHANNELS, VGG19Encoder

LEVELS = ["relu4_1", "relu3_1", "relu2_1"]
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-3}  # a plain _target_ mapping works as well as a Hydra partial
CONF = Path(__file__).resolve().parents[3] / "conf"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("tap", ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
def test_mirror_decoder_inverts_shapes(tap):
    enc_stride = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16}[tap]
    dec = VGGMirrorDecoder(tap, width=0.25)
    h = torch.rand(2, VGG19_CHANNELS[tap], 3, 5)
    assert dec(h).shape == (2, 3, 3 * enc_stride, 5 * enc_stride)
    assert dec.scale == enc_stride


def test_mirror_decoder_to_a_shallower_tap():
    dec = VGGMirrorDecoder("relu4_1", "relu3_1")
    out = dec(torch.rand(1, 512, 4, 4))
    assert out.shape == (1, 256, 8, 8) and (out >= 0).all()  # ReLU output, like the tap it imitates
    kinds = [op.kind for op in mirror_ops("relu4_1", "relu3_1")]
    assert kinds == ["conv", "pool", "conv", "conv", "conv"]
    # full-width relu4_1 -> image decoder is the AdaIN/WCT decoder: 9 convolutions, 3 upsamplings
    full = VGGMirrorDecoder("relu4_1")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in full.modules()) == 9
    with pytest.raises(ValueError):
        VGGMirrorDecoder("relu2_1", "relu3_1")


class LossRecorder:
    def __init__(self):
        import lightning as L

        class _CB(L.Callback):
            def __init__(cb):
                cb.losses = []

            def on_train_batch_end(cb, trainer, pl_module, outputs, batch, batch_idx):
                cb.losses.append(float(outputs["loss"]))

        self.callback = _CB()


@pytest.fixture(scope="module")
def encoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VGG19Encoder(taps=LEVELS, weights="random")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny decoder training run on the sample photos (random VGG), with checkpoints and image grids."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from genkit.training.callbacks.image_grid import ImageGridLogger
    from genkit.data.datamodules import ImageFolderDataModule
    from genkit.models.reshuffle.module import ReshuffleDecoderModule

    root = tmp_path_factory.mktemp("decoders")
    L.seed_everything(0, workers=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ReshuffleDecoderModule(levels=LEVELS, width=0.25, optimizer=ADAM, vgg_weights="random",
                                       perceptual_taps=["relu1_1", "relu2_1"])
        dm = ImageFolderDataModule(root=None, image_size=32, batch_size=4, val_fraction=0.2)
        dm.setup()
        fixed = next(iter(dm.train_dataloader()))
        with torch.no_grad():
            before = float(model._losses(fixed["image"])["loss"])
        rec = LossRecorder()
        ckpt = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True)
        grids = ImageGridLogger(every_n_steps=10, dirpath=str(root / "images"))
        trainer = L.Trainer(max_steps=24, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[ckpt, grids, rec.callback], default_root_dir=root,
                            gradient_clip_val=1.0, limit_val_batches=1, num_sanity_val_steps=0, check_val_every_n_epoch=4)
        trainer.fit(model, dm)
        with torch.no_grad():
            after = float(model._losses(fixed["image"])["loss"])
    return {"before": before, "after": after, "root": root, "losses": rec.callback.losses, "last": root / "checkpoints" / "last.ckpt",
            "model": model, "grids": grids, "dm": dm}


def test_decoders_train_and_log_reconstructions(trained):
    losses = trained["losses"]
    assert len(losses) == 24 and all(v == v for v in losses)
    assert trained["after"] < 0.7 * trained["before"], (trained["before"], trained["after"])  # same batch, before/after
    assert trained["grids"].saved, "visuals were not logged"
    rows = trained["model"].visuals(next(iter(trained["dm"].val_dataloader())))
    assert [name for name, _ in rows] == ["input"] + [f"decoded {t}" for t in LEVELS]
    assert all(0 <= float(img.min()) and float(img.max()) <= 1 for _, img in rows)


def test_checkpoint_records_levels_and_encoder_and_omits_the_encoder(trained):
    ckpt = torch.load(trained["last"], map_location="cpu", weights_only=True)
    assert ckpt["genkit"]["levels"] == LEVELS
    assert ckpt["genkit"]["target"] == "next_level" and ckpt["genkit"]["format"] == 2
    assert ckpt["genkit"]["chain"] == "relu4_1->relu3_1->relu2_1->image"
    assert ckpt["genkit"]["encoder"]["random"] is True
    assert not any(k.startswith("encoder.") for k in ckpt["state_dict"])
    names = {k.split(".")[2] for k in ckpt["state_dict"]}
    assert names == {"relu4_1_to_relu3_1", "relu3_1_to_relu2_1", "relu2_1_to_image"}
    # the optimiser factory is stored as a plain _target_ mapping (safe loading)
    assert ckpt["hyper_parameters"]["optimizer"]["_target_"].endswith("Adam")
    assert ckpt["hyper_parameters"]["optimizer"]["lr"] == 1e-3


def test_checkpoint_loads_for_stylize_and_for_resuming(trained, encoder):
    from genkit.models.reshuffle import Stylizer
    from genkit.models.reshuffle.decoders import load_decoders
    from genkit.models.reshuffle.module import ReshuffleDecoderModule

    decoders, record = load_decoders(trained["last"], encoder=encoder)
    assert decoders.levels == LEVELS and record["width"] == 0.25
    torch.testing.assert_close(decoders.state_dict(), trained["model"].decoders.state_dict())
    sub, _ = load_decoders(trained["last"], ["relu3_1", "relu2_1"], encoder=encoder)  # a suffix runs as well
    assert sub.levels == ["relu3_1", "relu2_1"] and set(sub.decoders) == {"relu3_1_to_relu2_1", "relu2_1_to_image"}
    torch.testing.assert_close(sub.decoders["relu2_1_to_image"].state_dict(),
                               trained["model"].decoders.decoders["relu2_1_to_image"].state_dict())
    res = Stylizer(decoder=trained["last"], encoder=encoder, size=32, iterations=1)(torch.rand(3, 32, 32),
                                                                                   torch.rand(3, 32, 32))
    assert res.settings["decoder"]["levels"] == LEVELS and len(res.settings["decoder"]["sha256"]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = ReshuffleDecoderModule.load_from_checkpoint(trained["last"], map_location="cpu",
                                                                weights_only=True)
    torch.testing.assert_close(restored.decoders.state_dict(), trained["model"].decoders.state_dict())


def test_resume_continues_the_step_count(trained, tmp_path):
    import lightning as L

    from genkit.models.reshuffle.module import ReshuffleDecoderModule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ReshuffleDecoderModule(levels=LEVELS, width=0.25, optimizer=ADAM, vgg_weights="random",
                                       perceptual_taps=["relu1_1", "relu2_1"])
        trainer = L.Trainer(max_steps=26, accelerator="cpu", logger=False, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                            default_root_dir=tmp_path)
        trainer.fit(model, trained["dm"], ckpt_path=str(trained["last"]))
    assert trainer.global_step == 26


def test_wrong_checkpoints_give_clear_errors(trained, encoder, tmp_path):
    import copy

    from genkit.models.reshuffle.decoders import load_decoders, save_decoders

    with pytest.raises(CheckpointError, match=r"covers levels relu4_1,relu3_1,relu2_1 .*relu2_1->relu1_1, "
                                              r"relu1_1->image missing.*--levels relu3_1,relu2_1"):
        load_decoders(trained["last"], ["relu4_1", "relu3_1", "relu2_1", "relu1_1"], encoder=encoder)
    with pytest.raises(CheckpointError, match="relu3_1->image missing"):  # a prefix lacks its image decoder
        load_decoders(trained["last"], ["relu4_1", "relu3_1"], encoder=encoder)
    other = copy.deepcopy(encoder)
    with torch.no_grad():
        other.features[0].weight.mul_(1.5)  # stands in for another weights file
    other.random_weights = False
    with pytest.raises(CheckpointError, match="trained to invert RANDOM VGG-19 weights"):
        load_decoders(trained["last"], encoder=other)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_decoders(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "genkit": {"kind": "portrait_generator"}}, foreign)
    with pytest.raises(CheckpointError, match="not a reshuffle decoder checkpoint.*portrait_generator"):
        load_decoders(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_decoders(tmp_path / "missing.ckpt")
    # a compact export round-trips
    compact = save_decoders(tmp_path / "dec.pt", trained["model"].decoders, encoder)
    dec, record = load_decoders(compact, encoder=encoder)
    assert record["levels"] == LEVELS


def test_hydra_experiment_composes_and_instantiates():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=reshuffle_decoders", "weights.allow_random=true",
                                          "model.width=0.125", "data.image_size=32"])
    assert cfg.task_name == "reshuffle_decoders" and cfg.optimized_metric == "val/loss"
    assert cfg.data._target_.endswith("ImageFolderDataModule") and cfg.data.root is None
    assert cfg.model.optimizer._partial_ is True and cfg.model.scheduler is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = instantiate(cfg.model, _convert_="partial")
    assert model.hparams.levels == LEVELS and model.hparams.allow_random is True
    assert isinstance(model.hparams.levels, list)  # plain types: checkpoints load with weights_only=True
    assert model.decoders.target == "next_level"
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 1e-4 and tuple(opt.defaults["betas"]) == (0.9, 0.999)
    # a scheduler (also a _partial_ config) is returned with the panel name "lr"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=reshuffle_decoders", "weights.allow_random=true", "model.width=0.125",
                                          "model.optimizer.lr=0.003", "+model.scheduler._target_=torch.optim.lr_scheduler.StepLR",
                                          "+model.scheduler._partial_=true", "+model.scheduler.step_size=5"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = instantiate(cfg.model, _convert_="partial")
    out = model.configure_optimizers()
    assert out["optimizer"].defaults["lr"] == 0.003
    assert out["lr_scheduler"]["name"] == "lr" and isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


def test_cascade_carries_each_blend_through_the_next_level_decoder(encoder, monkeypatch):
    """The relu4_1 blend reaches relu3_1 through the relu4_1->relu3_1 decoder (no image, no re-encoding)."""
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer, pyramid

    torch.manual_seed(0)
    decoders = ReshuffleDecoders(LEVELS, width=0.125)
    seen, calls = [], []
    real_level = pyramid.reshuffle_level

    def spy_level(content, style, level, *a, **kw):
        given = content.clone()  # the level builds its blend in the map it is given
        res = real_level(content, style, level, *a, **kw)
        seen.append((level.tap, given, res.features.clone()))
        return res

    def spy(name, fn):
        def wrapped(*a, **kw):
            out = fn(*a, **kw)
            calls.append((name, a[1:], out))
            return out
        return wrapped

    monkeypatch.setattr(pyramid, "reshuffle_level", spy_level)
    monkeypatch.setattr(decoders, "to_next", spy("to_next", decoders.to_next))
    monkeypatch.setattr(decoders, "to_image", spy("to_image", decoders.to_image))
    monkeypatch.setattr(encoder, "encode", spy("encode", encoder.encode))
    res = Stylizer(decoder=decoders, encoder=encoder, size=48, iterations=1, restore_detail=False)(
        torch.rand(3, 48, 48), torch.rand(3, 48, 48))
    assert [(n, args) for n, args, _ in calls] == [("encode", ("relu4_1",)), ("to_next", ("relu4_1", "relu3_1")),
                                                   ("to_next", ("relu3_1", "relu2_1")), ("to_image", ("relu2_1",))]
    (_, c4, blend4), (_, c3, blend3), (_, c2, _) = seen
    torch.testing.assert_close(c3, decoders.decoders["relu4_1_to_relu3_1"](blend4[None])[0])
    torch.testing.assert_close(c2, decoders.decoders["relu3_1_to_relu2_1"](blend3[None])[0])
    assert res.settings["decoder"]["target"] == "next_level"


def test_cascade_with_the_content_kept_is_the_decoder_chain(encoder):
    """alpha=1 keeps every blend equal to its content features: the output is exactly the decoded chain (the
    default, as the release), or, with the content's decoding losses added back (``restore_detail``), exactly the
    content."""
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer

    torch.manual_seed(1)
    decoders = ReshuffleDecoders(LEVELS, width=0.125).eval()
    x = torch.rand(1, 3, 48, 48)
    kept = Stylizer(decoder=decoders, encoder=encoder, size=48, iterations=1, alpha=1.0, restore_detail=True)(
        x, torch.rand(3, 48, 48))
    torch.testing.assert_close(kept.image, x[0])
    assert kept.settings["decoder"]["restore_detail"] is True
    assert [lv.detail_restored for lv in kept.levels] == [True] * 3
    res = Stylizer(decoder=decoders, encoder=encoder, size=48, iterations=1, alpha=1.0)(x, torch.rand(3, 48, 48))
    assert res.settings["decoder"]["restore_detail"] is False  # the release's method by default
    assert [lv.detail_restored for lv in res.levels] == [False] * 3
    with torch.no_grad():
        f4 = encoder.encode(x, "relu4_1")
        chain = decoders.to_image(decoders.to_next(decoders.to_next(f4, "relu4_1", "relu3_1"), "relu3_1", "relu2_1"),
                                  "relu2_1").clamp(0, 1)
        via_images = decoders.decode(f4, "relu4_1")
    torch.testing.assert_close(res.image, chain[0])
    torch.testing.assert_close(via_images, chain)  # decode() of a coarse tap runs the same chain


def test_format_1_image_decoders_still_load_and_run(encoder, tmp_path):
    """Checkpoints of per-level tap->image decoders (format 1) load, say so, and re-encode every level."""
    from genkit.models.reshuffle import ReshuffleDecoders, Stylizer
    from genkit.models.reshuffle.decoders import encoder_identity, load_decoders

    torch.manual_seed(2)
    old = ReshuffleDecoders(LEVELS, width=0.125, target="image")
    assert set(old.decoders) == set(LEVELS)  # format 1 state-dict keys: one decoder per tap
    path = tmp_path / "format1.ckpt"
    torch.save({"genkit": {"kind": "reshuffle_decoders", "format": 1, "levels": LEVELS, "width": 0.125,
                           "target": "image", "encoder": encoder_identity(encoder)},
                "state_dict": {f"decoders.{k}": v for k, v in old.state_dict().items()}}, path)
    dec, record = load_decoders(path, encoder=encoder)
    assert dec.target == "image" and record["format"] == 1
    torch.testing.assert_close(dec.state_dict(), old.state_dict())
    sub, _ = load_decoders(path, ["relu4_1", "relu3_1"], encoder=encoder)  # any subset of an image-decoder set
    assert sub.levels == ["relu4_1", "relu3_1"]
    res = Stylizer(decoder=path, encoder=encoder, size=48, iterations=1)(torch.rand(3, 48, 48), torch.rand(3, 48, 48))
    assert res.settings["decoder"]["target"] == "image" and res.image.shape == (3, 48, 48)


def test_decoders_record_their_encoder_variant_and_refuse_another(trained, encoder, tmp_path):
    """Decoders invert one encoder: a Caffe-VGG decoder set must not run on torchvision's VGG (or back), even when
    both are random with the same seed (same first-layer weights, different preprocessing)."""
    from genkit.models.reshuffle import Stylizer
    from genkit.models.reshuffle.decoders import load_decoders, save_decoders

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        caffe = VGG19Encoder(taps=LEVELS, weights="random", variant="caffe")
        torch.manual_seed(0)
        tv = VGG19Encoder(taps=LEVELS, weights="random")
    path = save_decoders(tmp_path / "caffe.pt", trained["model"].decoders, caffe)
    record = torch.load(path, map_location="cpu", weights_only=True)["genkit"]["encoder"]
    assert record["variant"] == "caffe" and record["identity"] == "vgg19-caffe:random"
    with pytest.raises(CheckpointError, match=r"caffe VGG-19.*torchvision VGG-19.*--vgg-variant caffe"):
        load_decoders(path, encoder=tv)
    dec, _ = load_decoders(path, encoder=caffe)
    assert dec.levels == LEVELS
    # the Stylizer builds the encoder the checkpoint names when no variant is asked for, and refuses a clash
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = Stylizer(decoder=path, vgg_weights="random", size=32, iterations=1)
        assert st.encoder.variant == "caffe"
        assert st.settings()["encoder"] == "vgg19-caffe:random"
        with pytest.raises(CheckpointError, match="caffe VGG-19"):
            Stylizer(decoder=path, vgg_weights="random", vgg_variant="torchvision", size=32, iterations=1)
    # a training checkpoint made for torchvision's VGG does not resume into a Caffe-VGG module
    from genkit.models.reshuffle.module import ReshuffleDecoderModule

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = ReshuffleDecoderModule(levels=LEVELS, width=0.25, optimizer=ADAM, vgg_weights="random",
                                        vgg_variant="caffe", perceptual_taps=["relu1_1", "relu2_1"])
    ckpt = torch.load(trained["last"], map_location="cpu", weights_only=True)
    with pytest.raises(CheckpointError, match="torchvision VGG-19.*caffe VGG-19"):
        module.on_load_checkpoint(ckpt)

"""The parser's LightningModule: metrics, visuals, checkpoints that carry schema and size, clear mismatches."""

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from genkit.data.datamodules import FaceDataModule
from genkit.data.schemas import CELEBAMASK19, HELEN11, get_schema
from genkit.core.errors import CheckpointError, ConfigError
from genkit.models.parsing import ParserNet, load_parser, load_parser_with_info
from genkit.models.parsing.module import ParserModule


def random_batches(schema, n=4, size=32):
    g = torch.Generator().manual_seed(0)
    items = [{"image": torch.rand(3, size, size, generator=g),
              "mask": torch.randint(0, get_schema(schema).num_classes, (size, size), generator=g),
              "name": f"r{i}"} for i in range(n)]
    return DataLoader(items, batch_size=2)


def quiet_trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kw)


def make_parser_checkpoint(path: Path, schema: str = "helen11", size: int = 32, base_channels: int = 4,
                           depth: int = 2, steps: int = 1) -> Path:
    """A real Lightning checkpoint of a (barely trained) parser."""
    L.seed_everything(0)
    model = ParserModule(schema=schema, image_size=size, base_channels=base_channels, depth=depth)
    trainer = quiet_trainer(max_steps=steps, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=random_batches(schema, size=size))
    trainer.save_checkpoint(path)
    return path


def test_checkpoint_carries_schema_size_and_weights(tmp_path):
    ckpt = make_parser_checkpoint(tmp_path / "p.ckpt", "celebamask19", size=32)
    net, info = load_parser_with_info(ckpt)
    assert info.schema.classes == CELEBAMASK19.classes and info.image_size == 32
    assert isinstance(net, ParserNet) and net.num_classes == 19 and not net.training
    assert info.class_weights is not None and info.class_weights.shape == (19,)
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    same = {k[4:]: v for k, v in raw["state_dict"].items() if k.startswith("net.")}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in same.items())
    loaded = load_parser(ckpt, expected_schema=CELEBAMASK19)
    assert loaded.schema.name == "celebamask19" and loaded.image_size == 32


def test_checkpoint_of_another_schema_is_a_clear_error(tmp_path):
    ckpt = make_parser_checkpoint(tmp_path / "p.ckpt", "helen11")
    with pytest.raises(CheckpointError, match=r"trained for schema 'helen11' \(11 classes.*'celebamask19' \(19"):
        load_parser(ckpt, expected_schema="celebamask19")
    # resuming training from it with another schema fails the same way
    other = ParserModule(schema="celebamask19", image_size=32, base_channels=4, depth=2)
    with pytest.raises(CheckpointError, match="helen11"):
        other.on_load_checkpoint(torch.load(ckpt, map_location="cpu", weights_only=True))


def test_unusable_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_parser(tmp_path / "missing.ckpt")
    (tmp_path / "photo.ckpt").write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_parser(tmp_path / "photo.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a face-parser checkpoint"):
        load_parser(tmp_path / "other.ckpt")


def test_validation_logs_miou_pixel_acc_and_per_class_iou():
    model = ParserModule(schema="helen11", image_size=32, base_channels=4, depth=2)
    out = quiet_trainer().validate(model, random_batches("helen11"), verbose=False)[0]
    assert 0.0 <= out["val/miou"] <= 1.0 and 0.0 <= out["val/pixel_acc"] <= 1.0
    assert {f"val/iou/{c}" for c in HELEN11.classes} <= set(out)


def test_visuals_rows_are_photo_truth_prediction_in_unit_range():
    model = ParserModule(schema="helen11", image_size=32, base_channels=4, depth=2, input_range="symmetric")
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "mask": torch.randint(0, 11, (2, 32, 32))}
    rows = model.visuals(batch)
    assert [name for name, _ in rows] == ["photo", "truth", "prediction"]
    for _, images in rows:
        assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    # truth is colour-coded with the schema's palette
    expected = torch.tensor(HELEN11.colorize(batch["mask"][0])).permute(2, 0, 1).float() / 255
    assert torch.allclose(rows[1][1][0], expected)


def test_data_and_model_must_agree():
    dm = FaceDataModule(image_size=32, target_schema="celebamask19")
    model = ParserModule(schema="helen11", image_size=32, base_channels=4, depth=2)
    with pytest.raises(ConfigError, match="schema"):
        quiet_trainer(max_steps=1).fit(model, datamodule=dm)
    dm = FaceDataModule(image_size=64)
    with pytest.raises(ConfigError, match="image_size"):
        quiet_trainer(max_steps=1).fit(ParserModule(image_size=32, base_channels=4, depth=2), datamodule=dm)


@pytest.mark.parametrize("kwargs, match", [({"class_weights": [1.0, 2.0]}, "11 classes"),
                                           ({"class_weights": "inverse"}, "auto"),
                                           ({"image_size": 30}, "divisible"),
                                           ({"input_range": "bytes"}, "input_range")])
def test_bad_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ParserModule(**{"image_size": 32, "base_channels": 4, "depth": 2, **kwargs})


def test_configured_class_weights_are_used_and_saved():
    w = [0.5] + [2.0] * 10
    model = ParserModule(image_size=32, base_channels=4, depth=2, class_weights=w)
    assert model.class_weights.tolist() == w
    assert model.hparams.class_weights == w

"""FaceDataModule over every on-disk source: official splits, target schema, on_bad_file."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.data_layouts import make_celebamask_raw, make_generic_folder, make_helen, write_truncated

from genkit.data.celebamask import prepare_celebamask
from genkit.data.datamodules import FaceDataModule
from genkit.data.schemas import CELEBAMASK19, HELEN11, save_schema
from genkit.data.sources import FACE_SOURCES
from genkit.core.errors import ConfigError, DataError


def _names(dm, split):
    ds = dm.datasets[split]
    return [ds[i]["name"] for i in range(len(ds))]


def _dm(source, root, **kw):
    kw.setdefault("image_size", 16)
    kw.setdefault("batch_size", 2)
    dm = FaceDataModule(source=source, root=str(root), **kw)
    dm.setup()
    return dm


def test_sources_list_matches_cli():
    from genkit.cli.data import CHECK_SOURCES

    assert set(CHECK_SOURCES) == set(FACE_SOURCES) - {"synthetic"}


@pytest.mark.parametrize("source", ["celebamask", "celebamask_raw"])
def test_celebamask_sources_use_the_official_split_in_helen11(tmp_path, source):
    raw = make_celebamask_raw(tmp_path)
    root = raw.src
    if source == "celebamask":
        root = tmp_path / "prepared"
        prepare_celebamask(raw.src, root, progress=False)
    dm = _dm(source, root)
    for split, ids in raw.splits.items():
        assert _names(dm, split) == [str(i) for i in ids]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["mask"].max() < HELEN11.num_classes
    assert dm.datasets["val"].transform.hflip is False and dm.datasets["train"].transform.hflip is True
    native = _dm(source, root, target_schema="celebamask19")
    assert native.datasets["test"].schema.classes == CELEBAMASK19.classes


def test_helen_source(tmp_path):
    names = make_helen(tmp_path / "helen", "split_dirs")
    dm = _dm("helen", tmp_path / "helen")
    assert {s: _names(dm, s) for s in names} == names
    with pytest.raises(ConfigError, match="differs from the target schema 'celebamask19'"):
        _dm("helen", tmp_path / "helen", target_schema="celebamask19")


def test_folder_source_split_is_disjoint_and_maps_known_schemas(tmp_path):
    names = make_generic_folder(tmp_path / "f", n=10)
    dm = _dm("folder", tmp_path / "f", val_fraction=0.2, test_fraction=0.2)
    parts = [_names(dm, s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [6, 2, 2] and sorted(sum(parts, [])) == names
    # a folder labelled in celebamask19 is read through the declared CELEBAMASK_TO_HELEN mapping
    save_schema(CELEBAMASK19, tmp_path / "f" / "schema.json")
    ds = _dm("folder", tmp_path / "f").datasets["train"]
    assert ds.schema is HELEN11 and ds.mapping is not None
    save_schema(HELEN11.__class__("two", ("a", "b")), tmp_path / "f" / "schema.json")
    with pytest.raises(ConfigError, match="schema.json: dataset schema 'two'"):
        _dm("folder", tmp_path / "f")


def test_on_bad_file_through_the_datamodule(tmp_path):
    names = make_generic_folder(tmp_path / "f", n=6)
    write_truncated(tmp_path / "f" / "images" / f"{names[4]}.png")
    with pytest.raises(DataError, match=f"{names[4]}.png: cannot be decoded"):
        dm = _dm("folder", tmp_path / "f", val_fraction=0, test_fraction=0)
        [b for b in dm.train_dataloader()]
    dm = _dm("folder", tmp_path / "f", val_fraction=0, test_fraction=0, on_bad_file="skip")
    assert len(dm.datasets["train"]) == 5 and dm.datasets["train"].skipped[0][0] == names[4]
    assert sum(len(b["name"]) for b in dm.train_dataloader()) == 5
    with pytest.raises(ConfigError, match="on_bad_file"):
        _dm("folder", tmp_path / "f", on_bad_file="maybe")


def test_source_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown data source 'imagenet'"):
        _dm("imagenet", tmp_path)
    with pytest.raises(ConfigError, match="needs data.dataset.root"):
        FaceDataModule(source="helen", root=None).setup()
    with pytest.raises(DataError, match="prepared CelebAMask-HQ folder does not exist"):
        _dm("celebamask", tmp_path / "nothing")


def test_synthetic_source_unchanged():
    dm = FaceDataModule(source="synthetic", image_size=16, n_synthetic=8)
    dm.setup()
    assert len(dm.datasets["train"]) == 8 and np.isfinite(dm.datasets["val"][0]["image"].numpy()).all()

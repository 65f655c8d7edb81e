"""Build the dataset of one split for a :class:`~genkit.data.datamodules.FaceDataModule` source."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from genkit.data.schemas import LabelSchema
from genkit.data.transforms import PairedTransform
from genkit.errors import ConfigError

FACE_SOURCES = ("synthetic", "folder")


def build_face_dataset(hp, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
    from genkit.data.datamodules import split_indices
    from genkit.data.datasets import GenericFolderDataset, SyntheticFaceDataset

    if hp.source == "synthetic":
        # disjoint seeds per split: the splits never share a face
        n = {"train": hp.n_synthetic, "val": max(2, hp.n_synthetic // 8), "test": max(2, hp.n_synthetic // 8)}[split]
        offset = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split]
        return SyntheticFaceDataset(n=n, size=hp.image_size, seed=hp.seed + offset, transform=transform)
    if hp.root is None:
        raise ConfigError(f"data source {hp.source!r} needs data.root (the dataset folder)")
    root = Path(hp.root)
    if hp.source == "folder":
        full = GenericFolderDataset(root, transform=transform, convert_modes=hp.convert_modes)
        _check_target(full.schema, target_schema, root)
        idx = split_indices(len(full), hp.val_fraction, hp.test_fraction, hp.seed)[split]
        return Subset(full, idx)
    raise ConfigError(f"unknown data source {hp.source!r}; choose one of {', '.join(FACE_SOURCES)}")


def _check_target(schema: LabelSchema, target: LabelSchema, root: Path) -> None:
    if schema.classes != target.classes:
        raise ConfigError(f"{root}: dataset schema {schema.name!r} ({schema.num_classes} classes) differs from the "
                          f"target schema {target.name!r} ({target.num_classes} classes); set data.target_schema")

"""Build the dataset of one split for a :class:`~genkit.data.datamodules.FaceDataModule` source.

Sources: ``synthetic`` (embedded), ``folder`` (``images/`` + ``masks/`` + schema file, seeded split),
``helen`` (any layout of :mod:`genkit.data.helen`, its official split), ``celebamask`` (a folder prepared by
``genkit data prepare celebamask-hq``, official split) and ``celebamask_raw`` (the distributed CelebAMask-HQ
layout, part masks merged on the fly, official split). ``hp.on_bad_file`` (``error``/``skip``) applies to all
sources read from disk.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from genkit.data.schemas import DECLARED_MAPPINGS, LabelSchema, SchemaMapping
from genkit.data.transforms import PairedTransform
from genkit.errors import ConfigError

FACE_SOURCES = ("synthetic", "folder", "helen", "celebamask", "celebamask_raw")

# declared mappings a folder in one schema may be read through to reach another
KNOWN_MAPPINGS: tuple[SchemaMapping, ...] = DECLARED_MAPPINGS


def build_face_dataset(hp, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
    from genkit.data.datamodules import split_indices
    from genkit.data.datasets import GenericFolderDataset, SyntheticFaceDataset, check_on_bad_file

    if hp.source == "synthetic":
        # disjoint seeds per split: the splits never share a face
        n = {"train": hp.n_synthetic, "val": max(2, hp.n_synthetic // 8), "test": max(2, hp.n_synthetic // 8)}[split]
        offset = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split]
        return SyntheticFaceDataset(n=n, size=hp.image_size, seed=hp.seed + offset, transform=transform)
    if hp.source not in FACE_SOURCES:
        raise ConfigError(f"unknown data source {hp.source!r}; choose one of {', '.join(FACE_SOURCES)}")
    if hp.root is None:
        raise ConfigError(f"data source {hp.source!r} needs data.root (the dataset folder)")
    root = Path(hp.root)
    common = dict(transform=transform, reading=reading_policy(hp),
                  on_bad_file=check_on_bad_file(getattr(hp, "on_bad_file", "error")))
    if hp.source == "folder":
        from genkit.data.datasets import find_schema_file, generic_folder_pairs
        from genkit.data.schemas import load_schema

        schema_file = find_schema_file(root)
        mapping = _mapping_to(load_schema(schema_file), target_schema, schema_file)
        n = len(generic_folder_pairs(root, require_masks=False))
        idx = split_indices(n, hp.val_fraction, hp.test_fraction, hp.seed)[split]
        return GenericFolderDataset(root, subset=idx, mapping=mapping, **common)
    if hp.source == "helen":
        from genkit.data.helen import HelenDataset
        from genkit.data.schemas import HELEN11

        _mapping_to(HELEN11, target_schema, root)
        return HelenDataset(root, split, val_fraction=hp.val_fraction, test_fraction=hp.test_fraction,
                            seed=hp.seed, **common)
    from genkit.data.celebamask import CelebAMaskHQDataset, CelebAMaskHQRawDataset

    cls = CelebAMaskHQDataset if hp.source == "celebamask" else CelebAMaskHQRawDataset
    return cls(root, split, target_schema=target_schema, **common)


def reading_policy(hp):
    """The photo :class:`~genkit.io.ReadPolicy` of a data config (``strict_modes``, ``transparency``)."""
    from genkit.io import ReadPolicy

    try:
        return ReadPolicy(strict=bool(getattr(hp, "strict_modes", False)), transparency=getattr(hp, "transparency", "drop"))
    except ValueError as exc:
        raise ConfigError(f"data.transparency: {exc}") from None


def _mapping_to(schema: LabelSchema, target: LabelSchema, where: Path) -> SchemaMapping | None:
    """``None`` when ``schema`` already is the target, a declared mapping when one exists, else an error."""
    if schema.classes == target.classes:
        return None
    for m in KNOWN_MAPPINGS:
        if m.source.classes == schema.classes and m.target.classes == target.classes:
            return m
    raise ConfigError(f"{where}: dataset schema {schema.name!r} ({schema.num_classes} classes) differs from the "
                      f"target schema {target.name!r} ({target.num_classes} classes) and no mapping between them "
                      "is declared; set data.target_schema or fix the schema file")

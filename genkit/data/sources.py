"""The face datasets a :class:`~genkit.data.datamodules.FaceDataModule` reads, one class per source.

Configs pick one by ``_target_`` (``data.dataset: {_target_: genkit.data.sources.HelenFaces, root: ...}``); the
datamodule calls it once per split with the split's paired transform and the target schema:
``source(split, transform, target_schema) -> Dataset``.

:class:`SyntheticFaces` (embedded, no download), :class:`FolderFaces` (``images/`` + ``masks/`` + schema file, seeded
split), :class:`HelenFaces` (any layout of :mod:`genkit.data.helen`, its official split), :class:`CelebAMaskFaces`
(a folder prepared by ``genkit data prepare celebamask-hq``, official split) and :class:`CelebAMaskRawFaces` (the
distributed CelebAMask-HQ layout, part masks merged on the fly). ``on_bad_file`` (``error``/``skip``) and
the image-reading policy (``strict_modes``, ``transparency``: :class:`genkit.core.reading.ReadPolicy`) apply to every source read
from disk. :data:`FACE_SOURCES` names them for the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from torch.utils.data import Dataset

from genkit.data.schemas import LabelSchema, SchemaMapping, find_mapping
from genkit.data.transforms import PairedTransform
from genkit.core.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass
class SyntheticFaces:
    """Procedural faces with exact masks; the splits use disjoint seeds, so they never share a face."""

    n: int = 64          # training faces; val and test get n // 8 (at least 2) each
    seed: int = 0
    name = "synthetic"

    def __call__(self, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
        from genkit.data.datasets import SyntheticFaceDataset

        n = {"train": self.n, "val": max(2, self.n // 8), "test": max(2, self.n // 8)}[split]
        offset = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split]
        return SyntheticFaceDataset(n=n, size=transform.size, seed=self.seed + offset, transform=transform)


@dataclass
class _DiskFaces:
    root: str | None = None
    strict_modes: bool = False    # true: refuse photos that are not 8-bit RGB (default: convert them, recorded)
    transparency: str = "drop"    # transparent photos: drop the alpha channel (as Pillow/torch-fidelity) or "white"
    on_bad_file: str = "error"    # skip: check every file first, drop and report the bad ones
    name = "disk"

    def _root(self) -> Path:
        if self.root in (None, ""):
            raise ConfigError(f"data source {self.name!r} needs data.dataset.root (the dataset folder)")
        return Path(self.root)

    def _common(self, transform: PairedTransform) -> dict:
        from genkit.data.datasets import check_on_bad_file

        return dict(transform=transform, reading=read_policy_of(self),
                    on_bad_file=check_on_bad_file(self.on_bad_file))


@dataclass
class _SeededSplitFaces(_DiskFaces):
    val_fraction: float = 0.1     # used by layouts without an official split
    test_fraction: float = 0.1
    seed: int = 0


@dataclass
class FolderFaces(_SeededSplitFaces):
    """Your own ``images/`` + ``masks/`` + schema file folder, split with a seed."""

    name = "folder"

    def __call__(self, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
        from genkit.data.datamodules import split_indices
        from genkit.data.datasets import GenericFolderDataset, find_schema_file, generic_folder_pairs
        from genkit.data.schemas import load_schema

        root = self._root()
        schema_file = find_schema_file(root)
        mapping = _mapping_to(load_schema(schema_file), target_schema, schema_file)
        n = len(generic_folder_pairs(root, require_masks=False))
        idx = split_indices(n, self.val_fraction, self.test_fraction, self.seed)[split]
        return GenericFolderDataset(root, subset=idx, mapping=mapping, **self._common(transform))


@dataclass
class HelenFaces(_SeededSplitFaces):
    """Helen face parsing (11 classes); its official split where the layout has one, else a seeded split."""

    name = "helen"

    def __call__(self, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
        from genkit.data.helen import HelenDataset
        from genkit.data.schemas import HELEN11

        root = self._root()
        _mapping_to(HELEN11, target_schema, root)
        return HelenDataset(root, split, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
                            seed=self.seed, **self._common(transform))


@dataclass
class CelebAMaskFaces(_DiskFaces):
    """CelebAMask-HQ prepared by ``genkit data prepare celebamask-hq`` (official split)."""

    name = "celebamask"

    def _dataset_class(self):
        from genkit.data.celebamask import CelebAMaskHQDataset

        return CelebAMaskHQDataset

    def __call__(self, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
        return self._dataset_class()(self._root(), split, target_schema=target_schema, **self._common(transform))


@dataclass
class CelebAMaskRawFaces(CelebAMaskFaces):
    """CelebAMask-HQ as distributed (part masks merged on the fly; official split)."""

    name = "celebamask_raw"

    def _dataset_class(self):
        from genkit.data.celebamask import CelebAMaskHQRawDataset

        return CelebAMaskHQRawDataset


FACE_SOURCES: dict[str, type] = {c.name: c for c in (SyntheticFaces, FolderFaces, HelenFaces, CelebAMaskFaces,
                                                      CelebAMaskRawFaces)}


def make_source(name: str, **options):
    """The source called ``name`` (a :data:`FACE_SOURCES` key) built from the options it takes; others are ignored."""
    if name not in FACE_SOURCES:
        raise ConfigError(f"unknown data source {name!r}; choose one of {', '.join(FACE_SOURCES)}")
    cls = FACE_SOURCES[name]
    if name == "synthetic" and "n_synthetic" in options:
        options = {**options, "n": options["n_synthetic"]}
    accepted = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in accepted})


def build_face_dataset(hp, split: str, transform: PairedTransform, target_schema: LabelSchema) -> Dataset:
    """One split of the source ``hp.source`` with the options in ``hp`` (a namespace; ``genkit data check``)."""
    return make_source(hp.source, **vars(hp))(split, transform, target_schema)


def read_policy_of(options):
    """The photo :class:`~genkit.core.reading.ReadPolicy` of a data config (``strict_modes``, ``transparency``)."""
    from genkit.core.reading import ReadPolicy

    try:
        return ReadPolicy(strict=bool(getattr(options, "strict_modes", False)),
                          transparency=getattr(options, "transparency", "drop"))
    except ValueError as exc:
        raise ConfigError(f"data transparency: {exc}") from None


def _mapping_to(schema: LabelSchema, target: LabelSchema, where: Path) -> SchemaMapping | None:
    """``None`` when ``schema`` already is the target, a declared mapping when one exists, else an error."""
    if schema.classes == target.classes:
        return None
    mapping = find_mapping(schema, target)
    if mapping is not None:
        return mapping
    raise ConfigError(f"{where}: dataset schema {schema.name!r} ({schema.num_classes} classes) differs from the "
                      f"target schema {target.name!r} ({target.num_classes} classes) and no mapping between them "
                      "is declared; set data.target_schema or fix the schema file")

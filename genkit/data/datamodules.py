"""LightningDataModules: image+mask data (portrait GAN, face parser) and content/style images (style model)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from genkit.data.sampling import EpochSampler, SeededSamples
from genkit.data.schemas import get_schema
from genkit.data.sources import make_source
from genkit.data.transforms import PairedTransform
from genkit.core.errors import ConfigError


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """A seeded, disjoint train/val/test split of ``range(n)``; val and test get at least one item when n >= 3."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g).tolist()
    n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 and n >= 3 else 0
    n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 and n >= 3 else 0
    return {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}


def train_loader(module: L.LightningDataModule, dataset: Dataset, batch_size: int, num_workers: int,
                 seed: int) -> DataLoader:
    """The training loader: a seeded, resumable, DDP-sharded order with per-sample augmentation seeds
    (see :mod:`genkit.data.sampling`)."""
    trainer = getattr(module, "trainer", None)
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = EpochSampler(dataset, seed=seed, shuffle=True, num_replicas=world, rank=rank)
    return DataLoader(SeededSamples(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    # a private generator: making the iterator draws a seed from it, never from the global state the model uses
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0))


class FaceDataModule(L.LightningDataModule):
    """Images with label maps, in the target schema (Helen-11 by default).

    ``dataset``: the source, called once per split (``dataset(split, transform, target_schema)``); configs choose it
    by ``_target_`` among :mod:`genkit.data.sources` (``SyntheticFaces``, ``FolderFaces``, ``HelenFaces``,
    ``CelebAMaskFaces``, ``CelebAMaskRawFaces``). Training samples are augmented (flip with left/right label swap,
    scale jitter); validation/test samples are not. ``seed`` seeds the training order and the augmentation.

    Python shortcut: without ``dataset``, ``source`` names the source (default ``synthetic``) and the keyword
    options below build it (``root``, ``n_synthetic``, ``val_fraction``, ``test_fraction``, ``strict_modes``,
    ``transparency``, ``on_bad_file``; see :func:`genkit.data.sources.make_source`).
    """

    def __init__(self, dataset: Callable[..., Dataset] | None = None, image_size: int = 128, batch_size: int = 4,
                 num_workers: int = 0, seed: int = 0, hflip: bool = True, scale_jitter: float = 0.05,
                 value_range: str = "unit", target_schema: str = "helen11", *, source: str | None = None,
                 **source_options):
        super().__init__()
        if dataset is not None and (source is not None or source_options):
            raise ConfigError("give the data source either as `dataset` or as `source=` with its options, not both")
        if dataset is None:
            dataset = make_source(source or "synthetic", **{"seed": seed, **source_options})
        self.dataset = dataset
        # logged once by genkit-train as part of the run config (logger=False); `source` names the dataset class
        self.save_hyperparameters("image_size", "batch_size", "num_workers", "seed", "hflip", "scale_jitter",
                                  "value_range", "target_schema", logger=False)
        self.hparams["source"] = getattr(dataset, "name", type(dataset).__name__)
        self.schema = get_schema(target_schema)
        self.datasets: dict[str, Dataset] = {}

    def provenance(self) -> dict:
        """What models trained on this data record in their checkpoints (``data_source``, ``synthetic_data``)."""
        return {"data_source": self.hparams.source, "synthetic_data": self.hparams.source == "synthetic",
                "image_size": int(self.hparams.image_size)}

    # the transform used for a split
    def transform(self, train: bool) -> PairedTransform:
        hp = self.hparams
        return PairedTransform(hp.image_size, self.schema, hflip=hp.hflip and train,
                               scale_jitter=hp.scale_jitter if train else 0.0, value_range=hp.value_range)

    def build_split(self, split: str) -> Dataset:
        return self.dataset(split, self.transform(split == "train"), self.schema)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self.build_split(split)

    def _dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise ConfigError(f"the {split} split of data source {self.hparams.source!r} is empty")
        return ds

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return train_loader(self, self._dataset("train"), hp.batch_size, hp.num_workers, hp.seed)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self._dataset("val"), self.hparams.batch_size, self.hparams.num_workers)

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self._dataset("test"), self.hparams.batch_size, self.hparams.num_workers)


class ImageFolderDataModule(L.LightningDataModule):
    """Plain images from a folder (or the sample photos shipped with installed packages) for the style model."""

    def __init__(self, root: str | None = None, image_size: int = 128, batch_size: int = 4,
                 num_workers: int = 0, val_fraction: float = 0.1, seed: int = 0, strict_modes: bool = False,
                 transparency: str = "drop"):
        super().__init__()
        self.save_hyperparameters(logger=False)  # logged once by genkit-train as part of the run config
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from genkit.data.datasets import ImageFolderDataset
        from genkit.data.samples import SamplePhotoDataset

        hp = self.hparams
        from genkit.data.sources import read_policy_of

        full = (ImageFolderDataset(Path(hp.root), size=hp.image_size, reading=read_policy_of(hp)) if hp.root
                else SamplePhotoDataset(hp.image_size))
        idx = split_indices(len(full), hp.val_fraction, 0.0, hp.seed)
        if not idx["val"]:
            idx["val"] = idx["train"][:1]
        self.datasets = {"train": Subset(full, idx["train"]), "val": Subset(full, idx["val"]),
                         "test": Subset(full, idx["val"])}

    def train_dataloader(self):
        self.setup()
        hp = self.hparams
        return train_loader(self, self.datasets["train"], hp.batch_size, hp.num_workers, hp.seed)

    def val_dataloader(self):
        self.setup()
        return eval_loader(self.datasets["val"], self.hparams.batch_size, self.hparams.num_workers)

    def test_dataloader(self):
        self.setup()
        return eval_loader(self.datasets["test"], self.hparams.batch_size, self.hparams.num_workers)



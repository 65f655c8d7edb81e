"""LightningDataModules: image+mask data (portrait GAN, face parser) and content/style images (style model)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from genkit.data.schemas import get_schema
from genkit.data.transforms import PairedTransform
from genkit.errors import ConfigError


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[int]]:
    """A seeded, disjoint train/val/test split of ``range(n)``; val and test get at least one item when n >= 3."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g).tolist()
    n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 and n >= 3 else 0
    n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 and n >= 3 else 0
    return {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}


class FaceDataModule(L.LightningDataModule):
    """Images with label maps, in the target schema (Helen-11 by default).

    ``source``: ``synthetic`` (embedded default, no download), ``folder`` (``images/`` + ``masks/`` + schema
    file), ``helen``, ``celebamask`` (prepared by ``genkit data prepare``) or ``celebamask_raw`` (see
    :mod:`genkit.data.sources`). Training samples are augmented (flip with left/right label swap, scale
    jitter); validation/test samples are not. ``on_bad_file``: ``error`` stops at the first bad file;
    ``skip`` validates every file up front and drops (and reports) the bad ones.
    """

    def __init__(self, source: str = "synthetic", root: str | None = None, image_size: int = 128,
                 batch_size: int = 4, num_workers: int = 0, n_synthetic: int = 64, seed: int = 0,
                 val_fraction: float = 0.1, test_fraction: float = 0.1, hflip: bool = True,
                 scale_jitter: float = 0.05, value_range: str = "unit", target_schema: str = "helen11",
                 convert_modes: bool = False, on_bad_file: str = "error"):
        super().__init__()
        self.save_hyperparameters()
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
        from genkit.data import sources

        return sources.build_face_dataset(self.hparams, split, self.transform(split == "train"), self.schema)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self.build_split(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        ds = self.datasets[split]
        if len(ds) == 0:
            raise ConfigError(f"the {split} split of data source {self.hparams.source!r} is empty")
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, drop_last=False,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class ImageFolderDataModule(L.LightningDataModule):
    """Plain images from a folder (or the sample photos shipped with installed packages) for the style model."""

    def __init__(self, root: str | None = None, image_size: int = 128, batch_size: int = 4,
                 num_workers: int = 0, val_fraction: float = 0.1, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.datasets: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from genkit.data.datasets import ImageFolderDataset
        from genkit.data.samples import SamplePhotoDataset

        hp = self.hparams
        full = ImageFolderDataset(Path(hp.root), size=hp.image_size) if hp.root else SamplePhotoDataset(hp.image_size)
        idx = split_indices(len(full), hp.val_fraction, 0.0, hp.seed)
        if not idx["val"]:
            idx["val"] = idx["train"][:1]
        self.datasets = {"train": Subset(full, idx["train"]), "val": Subset(full, idx["val"]),
                         "test": Subset(full, idx["val"])}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(self.datasets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)



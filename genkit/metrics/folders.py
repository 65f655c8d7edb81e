"""Reading image folders for metrics: decoding with :mod:`genkit.core`, batching, size bookkeeping.

Images are decoded to uint8 (the FID protocol's input) exactly as torch-fidelity decodes them
(:data:`genkit.core.reading.METRICS`: ``Image.open(f).convert("RGB")``; alpha dropped unless another policy is given), and
what was converted is counted in the :class:`FolderScan`. Decoding errors become a
:class:`~genkit.core.errors.DataError` naming the file, also when decoding runs in DataLoader workers (the worker
returns the problem instead of raising, so it is not turned into a bare ``RuntimeError``); with ``skip_errors``
bad files are skipped and listed instead. Batches may hold images of different sizes: they are split into
same-size groups before the network sees them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genkit.core.errors import DataError
from genkit.core.reading import METRICS, MIN_IMAGE_SIDE, ReadPolicy, conversion_note, list_images, read_image

log = logging.getLogger(__name__)


def size_label(width: int, height: int) -> str:
    return f"{width}x{height}"


@dataclass
class FolderScan:
    """What a pass over a set of images saw: count, sizes (``"WxH" -> count``), conversions (``note -> count``)
    and the files skipped as unreadable (``(path, problem)``)."""

    num_images: int = 0
    sizes: Counter = field(default_factory=Counter)
    conversions: Counter = field(default_factory=Counter)
    skipped: list = field(default_factory=list)

    @property
    def mixed_sizes(self) -> bool:
        return len(self.sizes) > 1

    def record(self) -> dict:
        out = {"num_samples": self.num_images, "image_sizes": dict(sorted(self.sizes.items())),
               "mixed_sizes": self.mixed_sizes}
        if self.conversions:
            out["conversions"] = dict(sorted(self.conversions.items()))
        if self.skipped:
            out["skipped"] = [f"{p}: {problem}" for p, problem in self.skipped]
        return out

    def skip(self, path: Path, problem: str) -> None:
        log.warning("skipping %s: %s", path, problem)
        self.skipped.append((str(path), problem))


class ImageFileDataset(Dataset):
    """``(index, uint8 tensor (3, H, W), conversion note or None)`` per file, or ``(index, problem string, None)``
    when it cannot be read."""

    def __init__(self, files: Sequence[Path], reading: ReadPolicy | None = None, min_side: int = MIN_IMAGE_SIDE):
        self.files = [Path(f) for f in files]
        self.reading = reading or METRICS
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            img = read_image(self.files[i], self.reading, min_side=self.min_side)
        except DataError as exc:
            return i, exc.problem, None
        # (3, H, W) view of a fresh writable array; torch.stack makes the batch contiguous
        return i, torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1), conversion_note(img)


def _collate(items):
    return items


def _prefetched_batches(dataset: ImageFileDataset, batch_size: int) -> Iterator[list]:
    """Batches of ``dataset`` items, decoded one batch ahead in a background thread.

    Without worker processes (the CPU default) this overlaps PNG/JPEG decoding (which releases the GIL) with the
    network's forward pass of the previous batch.
    """
    from concurrent.futures import ThreadPoolExecutor

    starts = list(range(0, len(dataset), batch_size))

    def load(start: int) -> list:
        return [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="genkit-decode") as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for k in range(len(starts)):
            items = pending.result()
            pending = pool.submit(load, starts[k + 1]) if k + 1 < len(starts) else None
            yield items


def read_uint8(path: str | Path, reading: ReadPolicy | None = None, min_side: int = MIN_IMAGE_SIDE) -> torch.Tensor:
    """One image file -> uint8 tensor (3, H, W); a DataError naming the file if it cannot be decoded."""
    return read_uint8_noted(path, reading, min_side)[0]


def read_uint8_noted(path: str | Path, reading: ReadPolicy | None = None,
                     min_side: int = MIN_IMAGE_SIDE) -> tuple[torch.Tensor, str | None]:
    """:func:`read_uint8` and the conversion note of the file (``None`` when it was already RGB)."""
    i, item, note = ImageFileDataset([path], reading, min_side)[0]
    if isinstance(item, str):
        raise DataError(path, item)
    return item, note


def default_num_workers(device: torch.device | str | None) -> int:
    """0 on CPU (decoding is a few % of an Inception forward there and runs one batch ahead in a thread),
    a few worker processes to keep a GPU fed."""
    if device is None or torch.device(device).type == "cpu":
        return 0
    return min(8, os.cpu_count() or 1)


def iter_uint8_groups(files: Sequence[Path], batch_size: int = 50, num_workers: int = 0,
                      reading: ReadPolicy | None = None, progress: bool = False, desc: str = "images",
                      scan: FolderScan | None = None, skip_errors: bool = False) -> Iterator[torch.Tensor]:
    """Yield uint8 batches (B, 3, H, W) of the files, in order, each batch holding one image size.

    ``scan`` (if given) is filled with the count, the sizes and the conversions seen. An unreadable file stops
    with a :class:`DataError` naming it, or, with ``skip_errors``, is skipped and listed in ``scan.skipped``.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    dataset = ImageFileDataset(files, reading)
    scan = scan if scan is not None else FolderScan()
    if num_workers > 0:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                            collate_fn=_collate, persistent_workers=False)
    else:
        loader = _prefetched_batches(dataset, batch_size)
    with tqdm(total=len(files), desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True) as bar:
        for items in loader:
            groups: dict[tuple[int, int], list[torch.Tensor]] = {}
            for i, item, note in items:
                if isinstance(item, str):
                    if not skip_errors:
                        raise DataError(files[i], item)
                    scan.skip(files[i], item)
                    continue
                if note:
                    scan.conversions[note] += 1
                groups.setdefault((item.shape[1], item.shape[2]), []).append(item)
            for (h, w), tensors in groups.items():
                scan.num_images += len(tensors)
                scan.sizes[size_label(w, h)] += len(tensors)
                yield torch.stack(tensors)
            bar.update(len(items))


def folder_files(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder (clear errors for a missing or empty folder)."""
    return list_images(folder)


def extract_features(files: Sequence[Path], extractor: Callable[[torch.Tensor], torch.Tensor],
                     on_features: Callable[[torch.Tensor], None], batch_size: int = 50, num_workers: int = 0,
                     reading: ReadPolicy | None = None, progress: bool = False, desc: str = "images",
                     skip_errors: bool = False) -> FolderScan:
    """Run ``extractor`` over the files batch by batch, handing each feature batch to ``on_features``."""
    scan = FolderScan()
    for batch in iter_uint8_groups(files, batch_size, num_workers, reading, progress, desc, scan, skip_errors):
        on_features(extractor(batch))
    if scan.mixed_sizes:
        log.warning("%s: images of mixed sizes %s (all are resized to 299x299 by the Inception; reported)",
                    desc, dict(scan.sizes))
    return scan


def paired_files(folder1: str | Path, folder2: str | Path) -> list[tuple[Path, Path]]:
    """Pair the images of two folders by file name (stem, so ``a.png`` pairs with ``a.jpg``).

    Every image must have a partner: unmatched names are an error that lists them.
    """
    f1, f2 = folder_files(folder1), folder_files(folder2)

    def by_stem(files: list[Path], folder) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in files:
            if f.stem in out:
                raise DataError(folder, f"two images share the name {f.stem!r} ({out[f.stem].name}, {f.name}); "
                                "pairing by file name is ambiguous")
            out[f.stem] = f
        return out

    m1, m2 = by_stem(f1, folder1), by_stem(f2, folder2)
    only1, only2 = sorted(set(m1) - set(m2)), sorted(set(m2) - set(m1))
    if only1 or only2:
        def show(names):
            return ", ".join(names[:5]) + (f" ... ({len(names)} in all)" if len(names) > 5 else "")
        parts = []
        if only1:
            parts.append(f"only in {folder1}: {show(only1)}")
        if only2:
            parts.append(f"only in {folder2}: {show(only2)}")
        raise DataError(None, "images are paired by file name, but some have no partner: " + "; ".join(parts))
    return [(m1[k], m2[k]) for k in sorted(m1)]

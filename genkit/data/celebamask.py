"""CelebAMask-HQ: the distributed layout, its preparation into label maps, and readers for both.

Distributed layout (``SRC``)::

    SRC/CelebA-HQ-img/{id}.jpg                                   1024x1024 RGB photos, id = 0..29999
    SRC/CelebAMask-HQ-mask-anno/{id // 2000}/{id:05d}_{part}.png  512x512 binary part masks (L or RGB, white = part)
    SRC/CelebA-HQ-to-CelebA-mapping.txt                           "idx orig_idx orig_file" + one row per image

A missing part file means the part is absent. Parts are merged in :data:`CELEBAMASK_PART_ORDER` (later parts
overwrite earlier ones) into one 19-class label map (:data:`CELEBAMASK19`). The official split follows the
original CelebA index of each image: ``< 162771`` train, ``< 182638`` val, the rest test.

Prepared layout (``OUT``, written by :func:`prepare_celebamask` / ``genkit data prepare celebamask-hq``)::

    OUT/images/{id}.jpg           the original photo, copied byte for byte (or resized to --size)
    OUT/masks/{id}.png            19-class label map (mode L) at the part-mask resolution (or --size)
    OUT/schema.json               the celebamask19 schema
    OUT/splits/{train,val,test}.txt  one image id per line
    OUT/prepare.json              what was done: source, options, counts, skipped files (written last)

Both readers keep the masks exact: a photo larger than its mask by a pure scale factor (1024 vs 512) is
resized (bicubic) to the mask size; the paired transform then resizes both to the training size.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genkit.data.datasets import MaskedImageDataset, check_on_bad_file
from genkit.data.schemas import (CELEBAMASK19, CELEBAMASK_PART_ORDER, CELEBAMASK_TO_HELEN, LabelSchema,
                                 SchemaMapping, get_schema, load_schema)
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import IMAGE_EXTENSIONS, PHOTOS, ReadPolicy, open_image, read_image

log = logging.getLogger(__name__)

IMAGE_DIR = "CelebA-HQ-img"
ANNO_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
TRAIN_END = 162771  # original CelebA indices below this are train
VAL_END = 182638  # ... below this val, the rest test
SPLITS = ("train", "val", "test")
FOLDER_SPAN = 2000  # part masks of image id live in folder id // 2000
_PART_MODES = ("1", "L", "P", "RGB")


# ------------------------------------------------------------------------------------- raw layout


def part_mask_path(src: str | Path, image_id: int, part: str) -> Path:
    return Path(src) / ANNO_DIR / str(image_id // FOLDER_SPAN) / f"{image_id:05d}_{part}.png"


def read_part_mask(path: str | Path) -> np.ndarray:
    """A binary part mask (8-bit L/P/RGB or 1-bit; white = part) as a boolean (H, W) array."""
    path = Path(path)
    img = open_image(path)
    if img.mode not in _PART_MODES:
        raise DataError(path, f"part mask must be an 8-bit grayscale or RGB image (white = part), got mode {img.mode}")
    return np.asarray(img.convert("L")) >= 128


def merge_part_masks(src: str | Path, image_id: int) -> np.ndarray:
    """One 19-class label map (uint8, (H, W)) from the part masks of ``image_id``, in the documented order."""
    folder = Path(src) / ANNO_DIR / str(image_id // FOLDER_SPAN)
    if not folder.is_dir():
        raise DataError(folder, f"part-mask folder for image {image_id} does not exist")
    labels = None
    first = None
    for value, part in enumerate(CELEBAMASK_PART_ORDER, start=1):
        path = part_mask_path(src, image_id, part)
        if not path.is_file():
            continue  # the part is absent from this face
        mask = read_part_mask(path)
        if labels is None:
            labels, first = np.zeros(mask.shape, dtype=np.uint8), path
        elif mask.shape != labels.shape:
            raise DataError(path, f"part mask is {mask.shape[1]}x{mask.shape[0]} but {first.name} is "
                                  f"{labels.shape[1]}x{labels.shape[0]}")
        labels[mask] = value
    if labels is None:
        raise DataError(folder / f"{image_id:05d}_*.png", f"no part masks for image {image_id} "
                                                          f"(expected e.g. {image_id:05d}_skin.png)")
    return labels


def read_mapping(path: str | Path) -> dict[int, int]:
    """``CelebA-HQ-to-CelebA-mapping.txt`` -> ``{celeba_hq_id: original_celeba_index}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "mapping file does not exist (needed for the official train/val/test split)")
    mapping: dict[int, int] = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, start=1):
        cols = line.split()
        if not cols or (lineno == 1 and not cols[0].isdigit()):  # blank line or the header
            continue
        try:
            idx, orig = int(cols[0]), int(cols[1])
        except (ValueError, IndexError):
            raise DataError(path, f"line {lineno}: expected 'idx orig_idx orig_file', got {line.strip()!r}") from None
        if idx in mapping:
            raise DataError(path, f"line {lineno}: image {idx} is listed twice")
        mapping[idx] = orig
    if not mapping:
        raise DataError(path, "mapping file lists no images")
    return mapping


def split_of(orig_idx: int) -> str:
    """The official split of an image from its original CelebA index."""
    return "train" if orig_idx < TRAIN_END else "val" if orig_idx < VAL_END else "test"


def raw_image_ids(src: str | Path) -> dict[int, Path]:
    """``{id: photo path}`` for the photos in ``SRC/CelebA-HQ-img`` (files named by their integer id)."""
    folder = Path(src) / IMAGE_DIR
    if not Path(src).is_dir():
        raise DataError(src, "CelebAMask-HQ folder does not exist")
    if not folder.is_dir():
        raise DataError(folder, f"folder does not exist (is {src} the unpacked CelebAMask-HQ folder?)")
    ids = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and p.stem.isdigit():
            ids[int(p.stem)] = p
    if not ids:
        raise DataError(folder, "folder contains no images named {id}.jpg")
    if not (Path(src) / ANNO_DIR).is_dir():
        raise DataError(Path(src) / ANNO_DIR, "part-mask folder does not exist")
    return dict(sorted(ids.items()))


def raw_index(src: str | Path, on_bad_file: str = "error"
              ) -> tuple[dict[int, Path], dict[str, list[int]], list[tuple[str, str]]]:
    """Photos present in ``src``, their official split, and ``(name, problem)`` for photos not in the mapping
    (an error unless ``on_bad_file="skip"``). Mapping rows without a photo are ignored (a partial copy is fine).
    """
    images = raw_image_ids(src)
    mapping_path = Path(src) / MAPPING_FILE
    mapping = read_mapping(mapping_path)
    splits: dict[str, list[int]] = {s: [] for s in SPLITS}
    unmapped = []
    for i, path in images.items():
        if i not in mapping:
            if on_bad_file == "error":
                raise DataError(path, f"image {i} is not listed in {mapping_path}")
            unmapped.append((str(i), f"{path}: image {i} is not listed in {mapping_path}"))
            continue
        splits[split_of(mapping[i])].append(i)
    return images, splits, unmapped


def _target_mapping(target_schema: str | LabelSchema | None) -> SchemaMapping | None:
    """No mapping for the native 19 classes; CELEBAMASK_TO_HELEN for Helen-11; anything else is an error."""
    if target_schema is None:
        return None
    target = get_schema(target_schema)
    if target.classes == CELEBAMASK19.classes:
        return None
    if target.classes == CELEBAMASK_TO_HELEN.target.classes:
        return CELEBAMASK_TO_HELEN
    raise ConfigError(f"no declared mapping from celebamask19 to schema {target.name!r}; "
                      "use target_schema helen11 or celebamask19")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


class CelebAMaskHQRawDataset(MaskedImageDataset):
    """One official split of CelebAMask-HQ read straight from the distributed layout, merging part masks on the
    fly (no preparation step; slower per sample than :class:`CelebAMaskHQDataset`).

    ``target_schema``: ``"helen11"`` (default, mapped with ``CELEBAMASK_TO_HELEN``) or ``"celebamask19"``.
    """

    def __init__(self, src: str | Path, split: str = "train", target_schema: str | LabelSchema | None = "helen11",
                 on_bad_file: str = "error", **kwargs):
        check_on_bad_file(on_bad_file)
        self.src = Path(src)
        images, splits, unmapped = raw_index(src, on_bad_file)
        ids = splits[_check_split(split)]
        if unmapped:
            log.warning("skipped %d images missing from the mapping file: %s", len(unmapped),
                        ", ".join(n for n, _ in unmapped))
        pairs = [(images[i], self.src / ANNO_DIR / str(i // FOLDER_SPAN)) for i in ids]
        kwargs.setdefault("scale_image_to_mask", True)
        super().__init__(pairs, CELEBAMASK19, mapping=_target_mapping(target_schema), on_bad_file=on_bad_file,
                         names=[str(i) for i in ids], root=self.src, **kwargs)
        self.skipped = unmapped + self.skipped

    def label_path(self, i: int) -> Path:
        image_id = int(self.names[i])
        return part_mask_path(self.src, image_id, "*")

    def read_labels(self, i: int) -> np.ndarray:
        return merge_part_masks(self.src, int(self.names[i])).astype(np.int64)


# -------------------------------------------------------------------------------- prepared layout


def check_prepared_schema(root: Path) -> Path:
    path = root / "schema.json"
    if not path.is_file():
        raise DataError(path, "schema file does not exist; is this a folder written by "
                              "'genkit data prepare celebamask-hq'?")
    schema = load_schema(path)
    if schema.classes != CELEBAMASK19.classes:
        raise DataError(path, f"wrong schema file: it declares {schema.name!r} with {schema.num_classes} classes, "
                              f"a prepared CelebAMask-HQ folder has celebamask19 (19 classes)")
    return path


def read_split_file(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(path, "split file does not exist")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise DataError(path, "split file lists no images")
    return names


class CelebAMaskHQDataset(MaskedImageDataset):
    """One official split of a prepared CelebAMask-HQ folder (see the module docstring for the layout)."""

    def __init__(self, root: str | Path, split: str = "train", target_schema: str | LabelSchema | None = "helen11",
                 on_bad_file: str = "error", **kwargs):
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "prepared CelebAMask-HQ folder does not exist" if not root.exists()
                            else "is not a folder")
        check_prepared_schema(root)
        names = read_split_file(root / "splits" / f"{_check_split(split)}.txt")
        pairs = [(_find_image(root / "images", n), root / "masks" / f"{n}.png") for n in names]
        kwargs.setdefault("scale_image_to_mask", True)
        super().__init__(pairs, CELEBAMASK19, mapping=_target_mapping(target_schema), on_bad_file=on_bad_file,
                         names=names, root=root, **kwargs)


def _find_image(folder: Path, name: str) -> Path:
    for ext in (".jpg", ".png", ".jpeg"):
        if (folder / f"{name}{ext}").exists():
            return folder / f"{name}{ext}"
    return folder / f"{name}.jpg"  # reading it reports the missing file


# ------------------------------------------------------------------------------------ preparation


@dataclass
class PrepareReport:
    out: Path
    counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        total = sum(self.counts.values())
        parts = ", ".join(f"{s} {self.counts[s]}" for s in SPLITS)
        line = f"prepared {total} CelebAMask-HQ images ({parts}) in {self.out}"
        if self.skipped:
            line += f"; skipped {len(self.skipped)} bad: " + ", ".join(n for n, _ in self.skipped)
        return line


def _prepare_one(job: tuple[str, str, int, str, int | None, ReadPolicy]) -> tuple[int, tuple[str | None, str] | None]:
    """Validate, merge and write one image; returns ``(id, None)`` or ``(id, (file, problem))``.

    Runs in worker processes, so the error travels as plain data (a DataError does not survive pickling).
    """
    from genkit.data.transforms import resize_image, resize_labels
    from genkit.core.files import atomic_write_bytes
    from genkit.core.saving import save_image, save_label_map

    src, out, image_id, image_path, size, reading = job
    out_dir, image_path = Path(out), Path(image_path)
    try:
        image = read_image(image_path, reading)  # full decode: truncated (or, strict, non-RGB) photos stop here
        labels = merge_part_masks(src, image_id)
        mh, mw = labels.shape
        if image.width * mh != image.height * mw:
            raise DataError(image_path, f"image is {image.width}x{image.height} but its part masks are {mw}x{mh} "
                                        "(different aspect ratio)")
        if size is None:
            atomic_write_bytes(out_dir / "images" / f"{image_id}{image_path.suffix.lower()}", image_path.read_bytes())
        else:
            save_image(resize_image(image, size), out_dir / "images" / f"{image_id}.jpg")
            labels = resize_labels(labels, size)
        save_label_map(labels, out_dir / "masks" / f"{image_id}.png")
    except DataError as exc:
        return image_id, (None if exc.path is None else str(exc.path), exc.problem)
    return image_id, None


def _check_out_not_in_src(src: Path, out: Path) -> None:
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents:
        raise ConfigError(f"--out {out} lies inside the source folder {src}; genkit never writes into the source "
                          "data, choose another output folder")


def prepare_celebamask(src: str | Path, out: str | Path, size: int | None = None, on_bad_file: str = "error",
                       workers: int = 0, progress: bool = True, reading: ReadPolicy | None = None) -> PrepareReport:
    """Merge CelebAMask-HQ part masks into label maps and write the official split (layout: module docstring).

    Nothing under ``src`` is modified; every output file is written atomically and ``prepare.json`` last.
    ``size``: also resize photos (bicubic) and masks (nearest) to ``size``² (default: keep them as they are).
    ``on_bad_file="skip"``: a bad photo or part mask drops that image (reported) instead of stopping.
    ``workers``: processes for decoding/merging (0 = in this process). ``reading``: how photos are decoded
    (default :data:`~genkit.core.reading.PHOTOS`; a strict policy refuses non-RGB photos). Photos are copied unchanged
    when ``size`` is None (the datasets convert them when they read them).
    """
    from tqdm import tqdm

    from genkit.data.schemas import save_schema
    from genkit.core.files import atomic_write_json, atomic_write_text

    src, out = Path(src), Path(out)
    check_on_bad_file(on_bad_file)
    if size is not None and size < 8:
        raise ConfigError(f"--size must be at least 8, got {size}")
    _check_out_not_in_src(src, out)
    images, splits, skipped = raw_index(src, on_bad_file)
    todo = sorted(i for s in SPLITS for i in splits[s])
    (out / "prepare.json").unlink(missing_ok=True)  # it marks a finished run: none until this one finishes
    jobs = [(str(src), str(out), i, str(images[i]), size, reading or PHOTOS) for i in todo]
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)

    bad: dict[int, DataError] = {}
    bar = tqdm(total=len(jobs), desc="CelebAMask-HQ", unit="img", disable=not progress)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 0 else None
    try:
        if pool is not None:
            results = pool.map(_prepare_one, jobs, chunksize=max(1, min(32, len(jobs) // (workers * 4))))
        else:
            results = map(_prepare_one, jobs)
        for image_id, error in results:
            bar.update()
            if error is not None:
                bad[image_id] = DataError(*error)
                if on_bad_file == "error":
                    raise bad[image_id]
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    skipped += [(str(i), str(bad[i])) for i in sorted(bad)]
    done = set(todo) - set(bad)
    counts = {}
    for s in SPLITS:
        kept = [i for i in splits[s] if i in done]
        counts[s] = len(kept)
        atomic_write_text(out / "splits" / f"{s}.txt", "".join(f"{i}\n" for i in kept))
    save_schema(CELEBAMASK19, out / "schema.json")
    report = PrepareReport(out, counts, skipped)
    atomic_write_json(out / "prepare.json", {
        "dataset": "CelebAMask-HQ", "source": str(src.resolve()), "size": size, "on_bad_file": on_bad_file,
        "image_reading": (reading or PHOTOS).record(),
        "part_order": list(CELEBAMASK_PART_ORDER), "split_rule": {"train": f"orig_idx < {TRAIN_END}",
                                                                  "val": f"orig_idx < {VAL_END}", "test": "rest"},
        "counts": counts, "skipped": [{"name": n, "problem": p} for n, p in skipped],
    })
    if skipped:
        log.warning("skipped %d bad images: %s", len(skipped), "; ".join(p for _, p in skipped))
    return report


__all__ = [
    "ANNO_DIR", "IMAGE_DIR", "MAPPING_FILE", "TRAIN_END", "VAL_END", "CelebAMaskHQDataset", "CelebAMaskHQRawDataset",
    "PrepareReport", "merge_part_masks", "part_mask_path", "prepare_celebamask", "raw_image_ids", "raw_index",
    "read_mapping", "read_part_mask", "split_of",
]


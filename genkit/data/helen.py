"""Helen face parsing (11 classes, :data:`~genkit.data.schemas.HELEN11`) in the layouts of its public releases.

Supported layouts of ``ROOT`` (detected by :func:`detect_helen_layout`):

``helenstar``  the ``helenstar_release`` archive: ``ROOT/{train,test}/NAME_image.jpg`` + ``NAME_label.png``
               (``NAME_viz.jpg`` previews are ignored).
``split_dirs`` ``ROOT/{train,val,test}/images/NAME.(jpg|png)`` + ``ROOT/{split}/labels/NAME.png``.
``flat``       ``ROOT/images/NAME.(jpg|png)`` + ``ROOT/labels/NAME.png``, split by list files (below).
``smith``      SmithCVPR2013_dataset(_resized): ``ROOT/images/NAME.jpg`` + per-class masks
               ``ROOT/labels/NAME/NAME_lbl00.png .. NAME_lbl10.png`` (grayscale, one per class, merged by
               per-pixel argmax; ties go to the lower class), split by ``exemplars.txt`` (train),
               ``tuning.txt`` (val) and ``testing.txt`` (test).

Label PNGs hold the values 0..10 in the Helen-11 order. Split lists (``flat``/``smith``) are
``ROOT/{train,val,test}.txt``, ``ROOT/splits/{split}.txt`` or Smith's file names; a line is a name or
``index , name``. Where the release has no validation split (``helenstar``, or lists/folders without val)
val is a seeded ``val_fraction`` of train; a ``flat`` folder without any list is split seeded by
``val_fraction``/``test_fraction``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genkit.data.datasets import MaskedImageDataset, check_on_bad_file
from genkit.data.schemas import HELEN11
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import IMAGE_EXTENSIONS, open_image, list_images

LAYOUTS = ("helenstar", "split_dirs", "flat", "smith")
SPLITS = ("train", "val", "test")
SMITH_LISTS = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}


def detect_helen_layout(root: str | Path) -> str:
    """Which supported Helen layout ``root`` has (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "Helen folder does not exist" if not root.exists() else "is not a folder")
    labels = root / "labels"
    if (root / "images").is_dir() and labels.is_dir():
        has_class_dirs = any(d.is_dir() and (d / f"{d.name}_lbl00.png").exists() for d in labels.iterdir())
        return "smith" if has_class_dirs else "flat"
    for split in SPLITS:
        d = root / split
        if (d / "images").is_dir():
            return "split_dirs"
        if d.is_dir() and next(d.glob("*_label.png"), None) is not None:
            return "helenstar"
    raise DataError(root, "not a Helen parsing folder: expected images/ + labels/, train/ + test/ with "
                          "NAME_image.jpg + NAME_label.png, or {train,val,test}/images + labels/")


def _image_by_name(folder: Path, name: str) -> Path:
    for ext in (".jpg", ".png", ".jpeg", ".bmp"):
        if (folder / f"{name}{ext}").exists():
            return folder / f"{name}{ext}"
    return folder / f"{name}.jpg"


def read_split_list(path: Path) -> list[str]:
    """Names from a split list: one per line, either ``NAME`` or ``index , NAME`` (extensions dropped)."""
    names = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        field = line.split(",")[-1].strip()
        if not field:
            continue
        field = field.split()[-1]
        names.append(Path(field).stem if Path(field).suffix.lower() in IMAGE_EXTENSIONS else field)
    if not names:
        raise DataError(path, "split list names no images")
    return names


def _split_lists(root: Path, layout: str) -> dict[str, list[str]] | None:
    found = {}
    for split in SPLITS:
        candidates = [root / f"{split}.txt", root / "splits" / f"{split}.txt"]
        if layout == "smith":
            candidates.insert(0, root / SMITH_LISTS[split])
        path = next((p for p in candidates if p.is_file()), None)
        if path is not None:
            found[split] = read_split_list(path)
    return found or None


def _carve(names_by_split: dict[str, list[str]], split: str, val_fraction: float, seed: int,
           root: Path) -> list[str]:
    """The names of ``split`` where the release has no val split: val = a seeded fraction of train."""
    from genkit.data.datamodules import split_indices

    if split in names_by_split and not (split == "train" and "val" not in names_by_split):
        return names_by_split[split]
    if split == "test":
        raise DataError(root, "this Helen folder has no test split (no test/ folder or test list)")
    if "train" not in names_by_split:
        raise DataError(root, "this Helen folder has no train split (no train/ folder or train list)")
    train = names_by_split["train"]
    idx = split_indices(len(train), val_fraction, 0.0, seed)
    return [train[i] for i in sorted(idx[split])]


def helen_items(root: str | Path, split: str, val_fraction: float = 0.1, test_fraction: float = 0.1,
                seed: int = 0) -> tuple[str, list[tuple[Path, Path]], list[str]]:
    """``(layout, [(image, label source)], names)`` of one split. The label source is a label PNG, or for the
    ``smith`` layout the folder of per-class masks."""
    from genkit.data.datamodules import split_indices

    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = Path(root)
    layout = detect_helen_layout(root)
    if layout in ("helenstar", "split_dirs"):
        by_split: dict[str, list[tuple[Path, Path, str]]] = {}
        for s in SPLITS:
            d = root / s
            if not d.is_dir():
                continue
            if layout == "helenstar":
                labels = sorted(d.glob("*_label.png"))
                if not labels:
                    raise DataError(d, "folder contains no NAME_label.png files")
                by_split[s] = [(_image_by_name(d, f"{p.name[:-len('_label.png')]}_image"), p,
                                p.name[:-len("_label.png")]) for p in labels]
            else:
                images = list_images(d / "images")
                by_split[s] = [(p, d / "labels" / f"{p.stem}.png", p.stem) for p in images]
        names = {s: [t[2] for t in items] for s, items in by_split.items()}
        lookup = {t[2]: t for items in by_split.values() for t in items}
        chosen = _carve(names, split, val_fraction, seed, root)
        items = [lookup[n] for n in chosen]
        return layout, [(a, b) for a, b, _ in items], [n for _, _, n in items]

    lists = _split_lists(root, layout)
    if lists is None:
        if layout == "smith":
            raise DataError(root / SMITH_LISTS["train"], "split list does not exist (Smith layout needs "
                                                         "exemplars.txt, tuning.txt and testing.txt)")
        all_names = [p.stem for p in list_images(root / "images")]
        chosen = [all_names[i] for i in sorted(split_indices(len(all_names), val_fraction, test_fraction, seed)[split])]
    else:
        chosen = _carve(lists, split, val_fraction, seed, root)
    label_of = (lambda n: root / "labels" / n) if layout == "smith" else (lambda n: root / "labels" / f"{n}.png")
    return layout, [(_image_by_name(root / "images", n), label_of(n)) for n in chosen], chosen


def merge_class_masks(folder: str | Path, num_classes: int = 11) -> np.ndarray:
    """Smith layout: ``folder/NAME_lbl00.png .. NAME_lbl10.png`` -> labels by per-pixel argmax (int64 (H, W))."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "per-class label folder does not exist")
    stack = []
    for k in range(num_classes):
        path = folder / f"{folder.name}_lbl{k:02d}.png"
        img = open_image(path)
        if img.mode not in ("L", "P", "1"):
            raise DataError(path, f"per-class mask must be 8-bit grayscale, got mode {img.mode}")
        arr = np.asarray(img.convert("L"))
        if stack and arr.shape != stack[0].shape:
            raise DataError(path, f"per-class mask is {arr.shape[1]}x{arr.shape[0]} but "
                                  f"{folder.name}_lbl00.png is {stack[0].shape[1]}x{stack[0].shape[0]}")
        stack.append(arr)
    return np.argmax(np.stack(stack), axis=0).astype(np.int64)


class HelenDataset(MaskedImageDataset):
    """One split of Helen in any supported layout (module docstring); labels are Helen-11, images must match
    their label maps in size."""

    def __init__(self, root: str | Path, split: str = "train", val_fraction: float = 0.1,
                 test_fraction: float = 0.1, seed: int = 0, on_bad_file: str = "error", **kwargs):
        check_on_bad_file(on_bad_file)
        self.layout, pairs, names = helen_items(root, split, val_fraction, test_fraction, seed)
        if not pairs:
            raise DataError(root, f"the {split} split of this Helen folder is empty")
        if on_bad_file == "error":
            for image, label in pairs:
                if not image.exists():
                    raise DataError(image, "image file does not exist (it is listed in the split)")
                if not label.exists():
                    raise DataError(image, f"has no label map (expected {label})")
        super().__init__(pairs, HELEN11, on_bad_file=on_bad_file, names=names, root=root, **kwargs)

    def read_labels(self, i: int) -> np.ndarray:
        if self.layout == "smith":
            return merge_class_masks(self.pairs[i][1], HELEN11.num_classes)
        return super().read_labels(i)

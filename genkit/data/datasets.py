"""Datasets of images with label maps, and plain image folders.

Every image+mask dataset yields ``{"image": float (3, H, W), "mask": long (H, W), "name": str}`` after its
:class:`~genkit.data.transforms.PairedTransform`, with labels in the dataset's *target* schema (Helen-11 for
the portrait model). Files are decoded and validated when a sample is read; problems raise
:class:`~genkit.core.errors.DataError` naming the file. Photos are read under a :class:`~genkit.core.reading.ReadPolicy`
(default :data:`~genkit.core.reading.PHOTOS`: any mode converted to 8-bit RGB, EXIF orientation applied; ``strict`` refuses
non-RGB files); label maps stay strict (8-bit single channel, values in the schema).

``on_bad_file="skip"`` instead validates every sample up front, drops the bad ones, logs their names and
keeps them in ``dataset.skipped`` (a list of ``(name, message)``). Folder-level problems (a missing or empty
folder, a wrong schema file) are errors either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from genkit.data.schemas import HELEN11, LabelSchema, SchemaMapping, get_schema
from genkit.data.synthetic import synthetic_face_with_background
from genkit.data.transforms import PairedTransform, center_crop_resize, resize_image
from genkit.core.errors import ConfigError, DataError
from genkit.core.reading import PHOTOS, ReadPolicy, list_images, read_image, read_label_map
from genkit.core.tensors import pil_to_tensor

log = logging.getLogger(__name__)

ON_BAD_FILE = ("error", "skip")


class AllSamplesBadError(DataError):
    """Every sample of a dataset (split) is bad: nothing to train on. ``skipped`` holds ``(name, problem)`` of each,
    so ``genkit data check`` reports them like any other bad files."""

    def __init__(self, root: Path | None, skipped: list[tuple[str, str]] | None = None):
        self.skipped = list(skipped or [])
        if skipped is None:  # rebuilt from its message alone (see DataError)
            super().__init__(root)
        else:
            super().__init__(root, f"all {len(skipped)} samples are bad; first: {skipped[0][1]}")


def check_on_bad_file(value: str) -> str:
    if value not in ON_BAD_FILE:
        raise ConfigError(f"on_bad_file must be one of {', '.join(ON_BAD_FILE)}, got {value!r}")
    return value


class SyntheticFaceDataset(Dataset):
    """``n`` procedural faces (see :mod:`genkit.data.synthetic`); sample ``i`` depends only on ``(seed, i)``.

    Items also carry ``"background"``: the picture without the face, transformed like the image (ground truth
    for the portrait model's background filling)."""

    synthetic = True

    def __init__(self, n: int = 64, size: int = 128, seed: int = 0, transform: PairedTransform | None = None,
                 render_size: int | None = None):
        self.n, self.size, self.seed = n, size, seed
        self.render_size = render_size or size
        self.schema = HELEN11
        self.transform = transform or PairedTransform(size, HELEN11)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        image, labels, background = synthetic_face_with_background(self.render_size,
                                                                   np.random.default_rng([self.seed, i]))
        x, m, bg = self.transform(Image.fromarray(image), labels, None, Image.fromarray(background))
        return {"image": x, "mask": m, "background": bg, "name": f"synth_{i:05d}"}


class MaskedImageDataset(Dataset):
    """Pairs of ``(image file, label source)`` read from disk, optionally mapped to another schema.

    The label source is a label PNG here; subclasses that assemble labels from several files (CelebAMask-HQ
    part masks, Helen per-class masks) override :meth:`read_labels` and :meth:`label_path`.

    ``scale_image_to_mask``: an image whose size differs from its mask's by a pure scale (same aspect ratio,
    e.g. CelebAMask-HQ's 1024² photos with 512² masks) is resized (bicubic) to the mask size, so labels are
    never interpolated; other size differences are errors.
    """

    synthetic = False

    def __init__(self, pairs: Sequence[tuple[Path, Path]], schema: LabelSchema,
                 transform: PairedTransform | None = None, mapping: SchemaMapping | None = None,
                 reading: ReadPolicy | None = None, size: int = 256, on_bad_file: str = "error",
                 names: Sequence[str] | None = None, scale_image_to_mask: bool = False,
                 allow_empty: bool = False, root: str | Path | None = None):
        self.on_bad_file = check_on_bad_file(on_bad_file)
        self.root = None if root is None else Path(root)
        if not pairs and not allow_empty:
            raise DataError(self.root, "dataset is empty")
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        self.names = list(names) if names is not None else [p[0].stem for p in self.pairs]
        if len(self.names) != len(self.pairs):
            raise ValueError("names and pairs differ in length")
        self.source_schema = schema
        if mapping is not None and mapping.source.classes != schema.classes:
            raise ValueError(f"mapping from {mapping.source.name!r} does not fit schema {schema.name!r}")
        self.mapping = mapping
        self.schema = mapping.target if mapping is not None else schema
        self.transform = transform or PairedTransform(size, self.schema)
        self.reading = reading or PHOTOS
        self.scale_image_to_mask = scale_image_to_mask
        self.skipped: list[tuple[str, str]] = []
        if self.on_bad_file == "skip" and self.pairs:
            self._drop_bad_samples()

    def __len__(self) -> int:
        return len(self.pairs)

    def label_path(self, i: int) -> Path:
        """The file (or file pattern) named in errors about sample ``i``'s labels."""
        return self.pairs[i][1]

    def read_labels(self, i: int) -> np.ndarray:
        """Labels of sample ``i`` in the *source* schema, validated against it."""
        return read_label_map(self.pairs[i][1], self.source_schema.num_classes)

    def load(self, i: int) -> tuple[Image.Image, np.ndarray]:
        """Decode and validate sample ``i`` (no transform): RGB image and labels in the target schema."""
        img_path = self.pairs[i][0]
        image = read_image(img_path, self.reading)
        labels = self.read_labels(i)
        mh, mw = labels.shape
        if (mh, mw) != (image.height, image.width):
            same_aspect = image.width * mh == image.height * mw
            if not (self.scale_image_to_mask and same_aspect):
                raise DataError(self.label_path(i), f"mask is {mw}x{mh} but its image {img_path.name} is "
                                                    f"{image.width}x{image.height}")
            image = resize_image(image, (mw, mh))
        if self.mapping is not None:
            labels = self.mapping.apply(labels)
        return image, labels

    def __getitem__(self, i: int) -> dict:
        image, labels = self.load(i)
        x, m = self.transform(image, labels)
        return {"image": x, "mask": m, "name": self.names[i]}

    def _drop_bad_samples(self) -> None:
        """Validate every sample; keep the good ones and record ``(name, problem)`` for the bad ones."""
        keep = []
        for i in range(len(self.pairs)):
            try:
                self.load(i)
            except DataError as exc:
                self.skipped.append((self.names[i], str(exc)))
            else:
                keep.append(i)
        if not self.skipped:
            return
        where = f" in {self.root}" if self.root is not None else ""
        if not keep:
            raise AllSamplesBadError(self.root, self.skipped)
        log.warning("skipped %d of %d samples as bad%s: %s", len(self.skipped), len(self.pairs), where,
                    "; ".join(msg for _, msg in self.skipped))
        self.pairs = [self.pairs[i] for i in keep]
        self.names = [self.names[i] for i in keep]

    def skip_report(self) -> str:
        """One line: how many samples were skipped and which."""
        if not self.skipped:
            return "no bad samples"
        return f"skipped {len(self.skipped)} bad samples: " + ", ".join(n for n, _ in self.skipped)


def generic_folder_pairs(root: str | Path, require_masks: bool = True) -> list[tuple[Path, Path]]:
    """``root/images/NAME.(jpg|png)`` paired with ``root/masks/NAME.png``.

    An image without a mask is an error, unless ``require_masks`` is false: then the pair is kept and fails
    (or is skipped) when it is read.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist" if not root.exists() else "is not a folder")
    images = list_images(root / "images")
    mask_dir = root / "masks"
    if not mask_dir.is_dir():
        raise DataError(mask_dir, "masks folder does not exist (expected images/ and masks/ side by side)")
    pairs = []
    for img in images:
        mask = mask_dir / f"{img.stem}.png"
        if require_masks and not mask.exists():
            raise DataError(img, f"has no mask (expected {mask})")
        pairs.append((img, mask))
    return pairs


def find_schema_file(root: str | Path) -> Path:
    root = Path(root)
    for name in ("schema.json", "schema.yaml", "schema.yml"):
        if (root / name).exists():
            return root / name
    raise DataError(root, "no schema file (schema.json / schema.yaml) in the dataset folder")


class GenericFolderDataset(MaskedImageDataset):
    """``images/`` + ``masks/`` + a schema file (see :func:`genkit.data.schemas.load_schema`).

    ``subset``: indices into the sorted image list (a split); only those samples are read and validated.
    """

    def __init__(self, root: str | Path, schema: str | LabelSchema | None = None,
                 subset: Sequence[int] | None = None, on_bad_file: str = "error", **kwargs):
        check_on_bad_file(on_bad_file)
        pairs = generic_folder_pairs(root, require_masks=on_bad_file == "error")
        self.schema_file = None if schema is not None else find_schema_file(root)
        schema = get_schema(schema) if schema is not None else get_schema(self.schema_file)
        if subset is not None:
            pairs = [pairs[i] for i in subset]
            kwargs.setdefault("allow_empty", True)
        super().__init__(pairs, schema, on_bad_file=on_bad_file, root=root, **kwargs)


class ImageFolderDataset(Dataset):
    """Plain images (content or style), any sizes; yields ``{"image": (3, H, W) in [0, 1], "name"}``."""

    def __init__(self, root: str | Path, size: int | None = 256, crop: bool = True, reading: ReadPolicy | None = None):
        self.files = list_images(root)
        self.size, self.crop, self.reading = size, crop, reading or PHOTOS

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        img = read_image(self.files[i], self.reading)
        if self.size is not None:
            img = center_crop_resize(img, self.size)[0] if self.crop else resize_image(img, self.size)
        return {"image": pil_to_tensor(img), "name": self.files[i].stem}

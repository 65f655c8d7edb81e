"""Datasets of images with label maps, and plain image folders.

Every image+mask dataset yields ``{"image": float (3, H, W), "mask": long (H, W), "name": str}`` after its
:class:`~genkit.data.transforms.PairedTransform`, with labels in the dataset's *target* schema (Helen-11 for
the portrait model). Files are decoded and validated when a sample is read; problems raise
:class:`~genkit.errors.DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from genkit.data.schemas import HELEN11, LabelSchema, SchemaMapping, get_schema
from genkit.data.synthetic import synthetic_face
from genkit.data.transforms import PairedTransform
from genkit.errors import DataError
from genkit.io import IMAGE_EXTENSIONS, list_images, pil_to_tensor, read_image, read_label_map


class SyntheticFaceDataset(Dataset):
    """``n`` procedural faces (see :mod:`genkit.data.synthetic`); sample ``i`` depends only on ``(seed, i)``."""

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
        image, labels = synthetic_face(self.render_size, np.random.default_rng([self.seed, i]))
        x, m = self.transform(Image.fromarray(image), labels)
        return {"image": x, "mask": m, "name": f"synth_{i:05d}"}


class MaskedImageDataset(Dataset):
    """Pairs of ``(image file, label file)`` read from disk, optionally mapped to another schema."""

    synthetic = False

    def __init__(self, pairs: list[tuple[Path, Path]], schema: LabelSchema,
                 transform: PairedTransform | None = None, mapping: SchemaMapping | None = None,
                 convert_modes: bool = False, size: int = 256):
        if not pairs:
            raise DataError(None, "dataset is empty")
        self.pairs = pairs
        self.source_schema = schema
        self.mapping = mapping
        self.schema = mapping.target if mapping is not None else schema
        self.transform = transform or PairedTransform(size, self.schema)
        self.convert_modes = convert_modes

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[Image.Image, np.ndarray]:
        """Decode and validate sample ``i`` (no transform): RGB image and labels in the target schema."""
        img_path, mask_path = self.pairs[i]
        image = read_image(img_path, convert_modes=self.convert_modes)
        labels = read_label_map(mask_path, self.source_schema.num_classes)
        if labels.shape != (image.height, image.width):
            raise DataError(mask_path, f"mask is {labels.shape[1]}x{labels.shape[0]} but its image {img_path.name} "
                                       f"is {image.width}x{image.height}")
        if self.mapping is not None:
            labels = self.mapping.apply(labels)
        return image, labels

    def __getitem__(self, i: int) -> dict:
        image, labels = self.load(i)
        x, m = self.transform(image, labels)
        return {"image": x, "mask": m, "name": self.pairs[i][0].stem}


def generic_folder_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """``root/images/NAME.(jpg|png)`` paired with ``root/masks/NAME.png``; unpaired files are errors."""
    root = Path(root)
    images = list_images(root / "images")
    mask_dir = root / "masks"
    if not mask_dir.is_dir():
        raise DataError(mask_dir, "masks folder does not exist (expected images/ and masks/ side by side)")
    pairs = []
    for img in images:
        mask = mask_dir / f"{img.stem}.png"
        if not mask.exists():
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
    """``images/`` + ``masks/`` + a schema file (see :func:`genkit.data.schemas.load_schema`)."""

    def __init__(self, root: str | Path, schema: str | LabelSchema | None = None, **kwargs):
        schema = get_schema(schema) if schema is not None else get_schema(find_schema_file(root))
        super().__init__(generic_folder_pairs(root), schema, **kwargs)


class ImageFolderDataset(Dataset):
    """Plain images (content or style), any sizes; yields ``{"image": (3, H, W) in [0, 1], "name"}``."""

    def __init__(self, root: str | Path, size: int | None = 256, crop: bool = True, convert_modes: bool = True):
        self.files = list_images(root)
        self.size, self.crop, self.convert_modes = size, crop, convert_modes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        from genkit.data.transforms import resize_image

        img = read_image(self.files[i], convert_modes=self.convert_modes)
        if self.size is not None:
            if self.crop:  # square centre crop, then resize
                s = min(img.size)
                left, top = (img.width - s) // 2, (img.height - s) // 2
                img = img.crop((left, top, left + s, top + s))
            img = resize_image(img, self.size)
        return {"image": pil_to_tensor(img), "name": self.files[i].stem}



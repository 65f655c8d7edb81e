"""Writing images and label maps: the format follows the extension, metadata rides along, every write is atomic."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, PngImagePlugin

from genkit.core.errors import ConfigError
from genkit.core.files import atomic_write_bytes, atomic_write_json
from genkit.core.metadata import METADATA_KEY, sidecar_path
from genkit.core.tensors import tensor_to_pil

if TYPE_CHECKING:
    import torch


# output extension -> Pillow format: the format always follows the name
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "TIFF": {"compression": "tiff_deflate"}}


def image_format(path: str | Path) -> str:
    """Pillow's format name for an output file's extension; an unknown extension is a :class:`ConfigError`."""
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        got = f"'{path.suffix}'" if path.suffix else "none"
        raise ConfigError(f"{path}: unknown image extension ({got}); the format follows the extension, use one of "
                          f"{', '.join(IMAGE_FORMATS)}")
    return fmt


def save_image(img: Image.Image | torch.Tensor, path: str | Path, metadata: dict | None = None,
               value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save an image atomically in the format its extension names (:data:`IMAGE_FORMATS`).

    ``metadata`` (a JSON-able dict) goes into a PNG text chunk, or for the other formats into a JSON sidecar
    ``NAME.EXT.json`` next to the image; :func:`read_metadata` reads either.
    """
    path = Path(path)
    fmt = image_format(path)
    if not isinstance(img, Image.Image):  # a tensor
        img = tensor_to_pil(img, value_range)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if metadata is not None:
            info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True, default=str))
        img.save(buf, format="PNG", pnginfo=info)
    else:
        img.save(buf, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    atomic_write_bytes(path, buf.getvalue())
    if metadata is not None and fmt != "PNG":
        atomic_write_json(sidecar_path(path), metadata)
    return path


def save_label_map(labels: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Save an (H, W) label array as an 8-bit single-channel PNG, atomically (PNG only: labels must be lossless)."""
    if Path(path).suffix.lower() != ".png":
        raise ConfigError(f"{path}: label maps are written as PNG (lossless); use a .png name")
    if hasattr(labels, "detach"):  # a tensor
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError("label values must be in 0..255 to be stored as an 8-bit PNG")
    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())

"""Reading and writing images, masks and files safely.

Reading: every failure is a :class:`~genkit.errors.DataError` naming the file and the problem.
Writing: always atomic (write to a temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written output or checkpoint in place of a good one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from genkit.errors import CheckpointError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
METADATA_KEY = "genkit"

_MODE_NAMES = {
    "L": "grayscale (mode L)",
    "LA": "grayscale with alpha (mode LA)",
    "RGBA": "RGBA (has an alpha channel)",
    "P": "palette (mode P)",
    "I;16": "16-bit grayscale (mode I;16)",
    "I;16B": "16-bit grayscale (mode I;16B)",
    "I": "32-bit integer (mode I)",
    "F": "32-bit float (mode F)",
    "CMYK": "CMYK",
    "1": "1-bit (mode 1)",
}


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly inside ``folder``; a clear error if it is missing or empty."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "folder does not exist")
    if not folder.is_dir():
        raise DataError(folder, "is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(folder, f"folder contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def open_image(path: Path) -> Image.Image:
    if not path.exists():
        raise DataError(path, "file does not exist")
    try:
        img = Image.open(path)
        img.load()  # decode now: truncated files fail here, not later inside a worker
    except UnidentifiedImageError:
        raise DataError(path, "cannot be decoded as an image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot be decoded as an image (truncated or corrupt: {exc})") from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode != "I" or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def read_image(path: str | Path, convert_modes: bool = False) -> Image.Image:
    """Read an 8-bit RGB image.

    Images in other modes (grayscale, RGBA, palette, 16-bit) are refused with an error that names the
    mode, unless ``convert_modes`` is set: then grayscale is replicated, alpha is composited over white and
    16-bit values are scaled to 8 bits.
    """
    path = Path(path)
    img = open_image(path)
    if img.mode == "RGB":
        return img
    if not convert_modes:
        kind = _MODE_NAMES.get(img.mode, f"mode {img.mode}")
        raise DataError(
            path,
            f"image is {kind}; genkit expects 8-bit RGB. Convert it, or allow conversion "
            "(data.dataset.convert_modes=true / --convert-modes).",
        )
    return to_rgb(img)


def read_label_map(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """Read a single-channel 8-bit label PNG as an ``int64`` array of shape (H, W).

    ``num_classes`` (when given) bounds the values: anything ``>= num_classes`` is an error naming the
    offending values, since a silently wrong label is worse than a stop.
    """
    path = Path(path)
    img = open_image(path)
    if img.mode not in ("L", "P"):
        kind = _MODE_NAMES.get(img.mode, f"mode {img.mode}")
        raise DataError(path, f"label map must be a single-channel 8-bit image (mode L or P), got {kind}")
    labels = np.asarray(img, dtype=np.int64)
    if num_classes is not None:
        bad = np.unique(labels[labels >= num_classes])
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:8]) + (" ..." if bad.size > 8 else "")
            raise DataError(path, f"label values {shown} are outside the schema (0..{num_classes - 1})")
    return labels


# --------------------------------------------------------------------------------------------- tensors


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def tensor_to_pil(t: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> Image.Image:
    """Float tensor (3, H, W) or (1, 3, H, W) in ``value_range`` -> RGB PIL image (rounded, clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    lo, hi = value_range
    t = ((t.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    arr = (t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


# ------------------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """A ``torch.save`` dict loaded safely (``weights_only=True``: tensors and plain types, no arbitrary
    unpickling); every failure is a :class:`~genkit.errors.CheckpointError` naming the file."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, so it cannot be loaded safely as a {what}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: holds objects that cannot be loaded safely with weights_only=True "
                              f"({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a genkit {what} (got {type(ckpt).__name__})")
    return ckpt


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def save_image(img: Image.Image | torch.Tensor, path: str | Path, metadata: dict | None = None,
               value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save an image atomically; for PNG the ``metadata`` dict is stored as JSON in a text chunk."""
    if isinstance(img, torch.Tensor):
        img = tensor_to_pil(img, value_range)
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if metadata is not None:
            info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True, default=str))
        img.save(buf, format="PNG", pnginfo=info)
    else:
        img.save(buf, format=fmt, quality=95)
    atomic_write_bytes(path, buf.getvalue())
    if metadata is not None and fmt != "PNG":
        atomic_write_json(path.with_suffix(path.suffix + ".json"), metadata)
    return path


def read_metadata(path: str | Path) -> dict | None:
    """The genkit metadata of an image written by :func:`save_image` (PNG chunk or JSON sidecar)."""
    path = Path(path)
    sidecar = path.with_suffix(path.suffix + ".json")
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    with Image.open(path) as img:
        text = getattr(img, "text", {}).get(METADATA_KEY)
    return None if text is None else json.loads(text)


def save_label_map(labels: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Save an (H, W) label array as an 8-bit single-channel PNG, atomically."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError("label values must be in 0..255 to be stored as an 8-bit PNG")
    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())

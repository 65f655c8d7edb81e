"""Reading and writing images, masks and files safely.

Reading: every failure is a :class:`~genkit.errors.DataError` naming the file and the problem.
Writing: always atomic (write to a temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written output or checkpoint in place of a good one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from genkit.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # torch loads lazily: `genkit --help` builds its parser from this module's constants
    import torch

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# output extension -> Pillow format: the format always follows the name
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "TIFF": {"compression": "tiff_deflate"}}
METADATA_KEY = "genkit"
CONVERSION_INFO = "genkit.conversion"  # key in ``Image.info`` holding what reading did to the file
MIN_IMAGE_SIDE = 8  # smaller than this on a side is not a picture any genkit model can use
TRANSPARENCY = ("drop", "white")  # what reading does with an alpha channel

_MODE_NAMES = {
    "L": "grayscale (mode L)",
    "LA": "grayscale with alpha (mode LA)",
    "RGBA": "RGBA (has an alpha channel)",
    "P": "palette (mode P)",
    "PA": "palette with alpha (mode PA)",
    "I;16": "16-bit grayscale (mode I;16)",
    "I;16B": "16-bit grayscale (mode I;16B)",
    "I;16L": "16-bit grayscale (mode I;16L)",
    "I": "32-bit integer (mode I)",
    "F": "32-bit float (mode F)",
    "CMYK": "CMYK",
    "1": "1-bit (mode 1)",
}
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def mode_name(mode: str) -> str:
    return _MODE_NAMES.get(mode, f"mode {mode}")


@dataclass(frozen=True)
class ReadPolicy:
    """How an image file becomes 8-bit RGB. One policy for the toolkit, in two profiles:

    * ``photo`` (:data:`PHOTOS`: stylize, edit, parse, datasets): the EXIF orientation is applied
      (``PIL.ImageOps.exif_transpose``, as a viewer shows the photo), 16/32-bit values are scaled to 8 bits by
      their high byte (as Pillow reads 48-bit PNGs and torchvision converts uint16), every other mode goes through
      Pillow's ``convert("RGB")`` (grey replicated, palette looked up, CMYK converted).
    * ``torch-fidelity`` (:data:`METRICS`: FID, KID, LPIPS folders): exactly ``Image.open(f).convert("RGB")``, as
      torch-fidelity, pytorch-fid and clean-fid read files, so numbers stay comparable (no EXIF rotation; 16-bit
      values above 255 clip to white there, which is logged).

    ``transparency``: ``"drop"`` (default, as those libraries do: the colour channels are kept as stored) or
    ``"white"`` (composited over white, as most viewers show a transparent PNG). ``strict``: refuse every file
    that is not already 8-bit RGB instead of converting it.
    """

    strict: bool = False
    transparency: str = "drop"
    profile: str = "photo"

    def __post_init__(self):
        if self.transparency not in TRANSPARENCY:
            raise ValueError(f"transparency must be one of {', '.join(TRANSPARENCY)}, got {self.transparency!r}")
        if self.profile not in ("photo", "torch-fidelity"):
            raise ValueError(f"profile must be 'photo' or 'torch-fidelity', got {self.profile!r}")

    @property
    def exif(self) -> bool:
        return self.profile == "photo"

    def record(self) -> dict:
        """JSON-friendly description, for output metadata and metric protocols (and statistics-cache keys)."""
        return {"profile": self.profile, "strict_modes": self.strict, "transparency": self.transparency,
                "exif_orientation": self.exif}


PHOTOS = ReadPolicy()
METRICS = ReadPolicy(profile="torch-fidelity")


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly inside ``folder``; a clear error if it is missing or empty.

    Entries named like images that are not regular files (a folder called ``x.png``, a dangling link) are listed
    too, so reading them reports the problem instead of silently leaving them out.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "folder does not exist")
    if not folder.is_dir():
        raise DataError(folder, "is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise DataError(folder, f"folder contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def open_image(path: Path, min_side: int = 1) -> Image.Image:
    """Open and fully decode an image file; every failure is one :class:`DataError` line naming the file.

    The header is checked before any pixel is decoded: a decompression bomb (a header claiming more than Pillow's
    limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``: about 179 million pixels) or an image under ``min_side`` px is
    refused without allocating it.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, "is a directory, not an image file")
    if not path.exists():
        raise DataError(path, "file does not exist" + (" (dangling link)" if path.is_symlink() else ""))
    if not path.is_file():
        raise DataError(path, "is not a regular file")
    try:
        if path.stat().st_size == 0:
            raise DataError(path, "file is empty (0 bytes)")
        img = Image.open(path)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(path, _bomb_problem(path)) from None
    except UnidentifiedImageError:
        raise DataError(path, "cannot be decoded as an image (unknown or corrupt format)") from None
    except PermissionError:
        raise DataError(path, "cannot be read (permission denied)") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on malformed headers
        raise DataError(path, f"cannot be decoded as an image (truncated or corrupt: {_short(exc)})") from None
    w, h = img.size
    if min(w, h) < min_side:
        img.close()
        raise DataError(path, f"image is {w}x{h} px, too small: genkit needs at least {min_side} px on each side")
    try:
        img.load()  # decode now: truncated files fail here, not later inside a worker
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, ValueError, zlib/struct errors...
        img.close()
        raise DataError(path, f"cannot be decoded as an image (truncated or corrupt: {_short(exc)})") from None
    return img


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _bomb_problem(path: Path) -> str:
    """The decompression-bomb line, with the size the header claims (read again without Pillow's limit; the
    header alone, no pixel is decoded)."""
    size = None
    try:
        with open(path, "rb") as f:
            head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            size = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    except OSError:
        pass
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 0
    claim = f"its header claims {size[0]}x{size[1]} pixels" if size else "its header claims too many pixels"
    return (f"refused as a possible decompression bomb: {claim}, over Pillow's limit of {limit:,} pixels; "
            "nothing was decoded (for a genuine image this large, raise PIL.Image.MAX_IMAGE_PIXELS)")


def _scale_wide(img: Image.Image) -> Image.Image:
    """16/32-bit integer grey -> 8-bit by the high byte (32-bit ``I`` holding 8-bit values is kept as is)."""
    arr = np.asarray(img).astype(np.int64)
    if img.mode == "I" and arr.max(initial=0) <= 255 and arr.min(initial=0) >= 0:
        return Image.fromarray(arr.astype(np.uint8))
    return Image.fromarray((np.clip(arr, 0, 65535) >> 8).astype(np.uint8))


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or (img.mode in ("P", "L") and "transparency" in img.info)


def to_rgb(img: Image.Image, policy: ReadPolicy = PHOTOS) -> tuple[Image.Image, str | None]:
    """``(8-bit RGB image, note)``: the conversion of a decoded image under ``policy`` (no strictness check);
    ``note`` says what was done (``None`` when the image already was RGB)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    steps = []
    alpha = _has_alpha(img)
    if policy.profile == "photo" and mode in _WIDE_MODES:
        img = _scale_wide(img)
        steps.append("16/32-bit scaled to 8 bits")
    elif policy.profile == "photo" and mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        unit = arr.size and np.nanmax(arr) <= 1.0
        img = Image.fromarray(np.clip(np.nan_to_num(arr) * (255.0 if unit else 1.0) + 0.5, 0, 255).astype(np.uint8))
        steps.append("float values in [0, 1] scaled to 8 bits" if unit else "float values clipped to 0..255")
    elif mode in _WIDE_MODES or mode == "F":
        steps.append("16/32-bit values above 255 clip to white (as torch-fidelity reads them)")
    if alpha and policy.transparency == "white":
        rgba = img.convert("RGBA")
        out = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), rgba).convert("RGB")
        steps.append("alpha composited over white")
    else:
        try:
            out = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot convert {mode_name(mode)} to RGB ({exc})") from None
        if alpha:
            steps.append("alpha dropped")
    if mode == "L":
        steps.insert(0, "grey replicated")
    elif mode == "P":
        steps.insert(0, "palette looked up")
    note = f"{mode} -> RGB" + (f" ({', '.join(steps)})" if steps else "")
    return out, note



def as_rgb(img: Image.Image, policy: ReadPolicy, where) -> tuple[Image.Image, str | None]:
    """``img`` as 8-bit RGB under ``policy`` with the conversion note (None if it was RGB already); a strict policy,
    or a mode that cannot be converted, is a :class:`DataError` naming ``where``."""
    if img.mode == "RGB":
        return img, None
    if policy.strict:
        raise DataError(where, f"image is {mode_name(img.mode)}, not 8-bit RGB, and strict mode refuses "
                               "conversions (drop --strict-modes / strict_modes=true to convert it)")
    try:
        return to_rgb(img, policy)
    except ValueError as exc:
        raise DataError(where, str(exc)) from None


def read_image(path: str | Path, policy: ReadPolicy = PHOTOS, *, min_side: int = MIN_IMAGE_SIDE,
               **overrides) -> Image.Image:
    """Read an image file as 8-bit RGB under ``policy`` (see :class:`ReadPolicy`).

    ``overrides`` replace policy fields (``read_image(p, strict=True)``, ``transparency="white"``). What was done to
    the file (mode conversion, EXIF rotation) is in ``img.info[CONVERSION_INFO]`` (see :func:`conversion_note`).
    Broken files, images under ``min_side`` px and (strict) non-RGB files raise a :class:`DataError` naming the
    file and the problem.
    """
    if overrides:
        policy = replace(policy, **overrides)
    path = Path(path)
    img = open_image(path, min_side)
    notes = []
    if policy.exif:
        try:
            orientation = img.getexif().get(0x0112)
            if orientation not in (None, 1):
                img = ImageOps.exif_transpose(img)
                notes.append(f"EXIF orientation {orientation} applied")
        except Exception as exc:  # noqa: BLE001 - a damaged EXIF block must not hide the picture
            log.warning("%s: EXIF orientation ignored (%s)", path, _short(exc))
    img, note = as_rgb(img, policy, path)
    if note:
        notes.insert(0, note)
        if policy.profile != "photo" and "clip to white" in note and not _CLIP_WARNED:
            _CLIP_WARNED.append(path)
            log.warning("%s: %s; convert 16-bit files to 8 bits for meaningful metrics (warned once; the "
                        "protocol counts every conversion)", path, note)
    img.info[CONVERSION_INFO] = "; ".join(notes) if notes else None
    return img


_CLIP_WARNED: list[Path] = []  # the 16-bit clipping of metric reading is logged once per process


def conversion_note(img: Image.Image) -> str | None:
    """What :func:`read_image` did to turn the file into 8-bit RGB (``None``: nothing, it was RGB and upright)."""
    return img.info.get(CONVERSION_INFO)


def read_label_map(path: str | Path, num_classes: int | None = None) -> np.ndarray:
    """Read a single-channel 8-bit label PNG as an ``int64`` array of shape (H, W).

    Label maps keep strict rules (no conversion, no EXIF rotation): mode L or P only. ``num_classes`` (when
    given) bounds the values: anything ``>= num_classes`` is an error naming the offending values, since a
    silently wrong label is worse than a stop.
    """
    path = Path(path)
    img = open_image(path)
    if img.mode not in ("L", "P"):
        raise DataError(path, f"label map must be a single-channel 8-bit image (mode L or P), got {mode_name(img.mode)}")
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
    import torch

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


def _temp_beside(path: Path) -> Path:
    """Create an empty, unique temporary file next to ``path`` with the permissions a plain ``open(path, "w")``
    would give: the umask's (``os.open`` mode 0o666), or the existing file's when ``path`` is replaced.
    (``tempfile.mkstemp`` would make every output 0600, unreadable to colleagues on a shared machine.)"""
    try:
        keep = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    except OSError:
        keep = None
    for _ in range(100):
        tmp = path.parent / f".{path.name[:120]}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        if keep is not None:
            os.chmod(tmp, keep)
        return tmp
    raise FileExistsError(f"could not create a temporary file next to {path}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The file gets the permissions the umask allows (or those of the file it replaces).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(path)
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
        import torch

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
    import torch

    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


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


def sidecar_path(path: str | Path) -> Path:
    """Where the metadata of a non-PNG image lives: ``NAME.EXT.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_metadata(path: str | Path) -> dict | None:
    """The genkit metadata of an image written by :func:`save_image` (PNG chunk or JSON sidecar)."""
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    with Image.open(path) as img:
        text = getattr(img, "text", {}).get(METADATA_KEY)
    return None if text is None else json.loads(text)


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


# ------------------------------------------------------------------------------------ output checks


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, what: str) -> None:
    """``path`` (not yet existing, or an existing folder) can be created/written by this user."""
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise ConfigError(f"{path}: cannot write {what} there: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: cannot write {what} there: {base} is not writable")


def check_output_file(path: str | Path, what: str = "output", suffixes=None, hint: str | None = None) -> Path:
    """Check an output file path before any work starts: not an existing folder, an allowed extension (when
    ``suffixes`` is given, e.g. :data:`IMAGE_FORMATS`), and a folder it can be written into. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: {what} is an existing folder; give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        got = f"'{path.suffix}'" if path.suffix else "none"
        raise ConfigError(f"{path}: {what} has an unknown extension ({got}); "
                          + (hint or f"use one of {', '.join(suffixes)}"))
    _check_creatable(path.parent if str(path.parent) else Path("."), what)
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise ConfigError(f"{path}: {what} exists and cannot be replaced (not writable)")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check an output folder before any work starts: not an existing file, and creatable/writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: {what} is a file, not a folder")
    _check_creatable(path, what)
    return path

"""Reading photos and label maps: the read policy (which modes are converted, and how), decoding with a clear
error for every bad file, EXIF orientation, and the size checks that keep decompression bombs out.

Every failure is a :class:`~genkit.core.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from genkit.core.errors import DataError

log = logging.getLogger(__name__)


# The image files a folder scan takes (any case): the raster formats Pillow decodes itself. A single file is read
# whatever its name; a folder keeps to these so that videos, PDFs or data files next to the images are not read.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".apng", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
                    ".pnm", ".tga")

CONVERSION_INFO = "genkit.conversion"  # key in ``Image.info`` holding what reading did to the file
FRAMES_INFO = "genkit.frames"  # key in ``Image.info`` holding the file's frame count (open_image)
MIN_IMAGE_SIDE = 8  # smaller than this on a side is not a picture any genkit model can use
TRANSPARENCY = ("drop", "white")  # what reading does with an alpha channel
ORIENTATION_TAG = 0x0112  # EXIF Orientation
TURNED = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 degrees: its width and height swap

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
    """Sorted image files (:data:`IMAGE_EXTENSIONS`) directly inside ``folder``; a clear error if it is missing or
    empty.

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


def check_file(path: str | Path, what: str = "") -> Path:
    """``path`` as a :class:`Path` if it names a regular, non-empty file this process may read; else one
    :class:`DataError` naming it and the problem (``what``, e.g. ``"--style-mask"``, says which input it is). Cheap
    (no decoding): commands check every input with it before building a model."""
    path = Path(path)
    label = f"{what} " if what else ""
    if path.is_dir():
        raise DataError(path, f"{label}is a directory, not an image file")
    if not path.exists():
        raise DataError(path, f"{label}file does not exist" + (" (dangling link)" if path.is_symlink() else ""))
    if not path.is_file():
        raise DataError(path, f"{label}is not a regular file")
    try:
        empty = path.stat().st_size == 0
        readable = os.access(path, os.R_OK)
    except OSError as exc:
        raise DataError(path, f"{label}cannot be read ({_short(exc)})") from None
    if empty:
        raise DataError(path, f"{label}file is empty (0 bytes)")
    if not readable:
        raise DataError(path, f"{label}cannot be read (permission denied)")
    return path


def open_image(path: Path, min_side: int = 1, reduce_to: int | None = None) -> Image.Image:
    """Open and fully decode an image file; every failure is one :class:`DataError` line naming the file.

    The header is checked before any pixel is decoded: a decompression bomb (a header claiming more than Pillow's
    limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``: about 179 million pixels) or an image under ``min_side`` px is
    refused without allocating it. ``reduce_to``: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose
    shorter side is still at least twice this (Pillow's ``draft``), the cheap part of :func:`read_image`'s reduction.
    """
    path = check_file(path)
    try:
        img = Image.open(path)
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
    img.info[FRAMES_INFO] = _frame_count(img)  # before decoding: counting seeks through the file
    if reduce_to and img.format == "JPEG" and min(w, h) >= 4 * reduce_to:
        scale = 2 * reduce_to / min(w, h)
        img.draft(img.mode, (math.ceil(w * scale), math.ceil(h * scale)))
    try:
        img.load()  # decode now: truncated files fail here, not later inside a worker
    except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, ValueError, zlib/struct errors...
        img.close()
        raise DataError(path, f"cannot be decoded as an image (truncated or corrupt: {_short(exc)})") from None
    return img


def _frame_count(img: Image.Image) -> int:
    """Frames of an animated GIF/PNG/WebP or pages of a TIFF (1 for a still image). A camera's MPO JPEG counts as
    one: its further images are previews or depth maps, the first is the photo."""
    if img.format == "MPO":
        return 1
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - a damaged later frame must not hide the first one
        return 1


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
                               "conversions (drop --strict-modes / strict_modes=false to convert it)")
    try:
        return to_rgb(img, policy)
    except ValueError as exc:
        raise DataError(where, str(exc)) from None


def read_image(path: str | Path, policy: ReadPolicy = PHOTOS, *, min_side: int = MIN_IMAGE_SIDE,
               reduce_to: int | None = None, **overrides) -> Image.Image:
    """Read an image file as 8-bit RGB under ``policy`` (see :class:`ReadPolicy`).

    ``overrides`` replace policy fields (``read_image(p, strict=True)``, ``transparency="white"``). What was done to
    the file (mode conversion, EXIF rotation, only the first of several frames read) is in
    ``img.info[CONVERSION_INFO]`` (see :func:`conversion_note`).
    Broken files, images under ``min_side`` px and (strict) non-RGB files raise a :class:`DataError` naming the
    file and the problem.

    ``reduce_to``: the caller resizes the image to about this many px anyway, so a large photo is reduced while it
    is decoded (JPEG) or right after, in 8 bits, by the largest integer factor that keeps its shorter side at least
    twice ``reduce_to`` (box averages; the caller's own antialiased resize does the rest). A 12000 x 12000 photo
    stylised at 64 px then never becomes a 1.7 GB float tensor.
    """
    if overrides:
        policy = replace(policy, **overrides)
    path = Path(path)
    img = open_image(path, min_side, reduce_to)
    frames = img.info.get(FRAMES_INFO, 1)
    if reduce_to:
        img = reduced(img, reduce_to)
    notes = []
    if policy.exif:
        try:
            orientation = img.getexif().get(ORIENTATION_TAG)
            if orientation not in (None, 1):
                img = ImageOps.exif_transpose(img)
                notes.append(f"EXIF orientation {orientation} applied")
        except Exception as exc:  # noqa: BLE001 - a damaged EXIF block must not hide the picture
            log.warning("%s: EXIF orientation ignored (%s)", path, _short(exc))
    img, note = as_rgb(img, policy, path)
    if frames > 1:  # an animated GIF or a multi-page TIFF: Pillow decodes the first frame
        notes.append(f"first of {frames} frames")
    if note:
        notes.insert(0, note)
        if policy.profile != "photo" and "clip to white" in note and not _CLIP_WARNED:
            _CLIP_WARNED.append(path)
            log.warning("%s: %s; convert 16-bit files to 8 bits for meaningful metrics (warned once; the "
                        "protocol counts every conversion)", path, note)
    img.info[CONVERSION_INFO] = "; ".join(notes) if notes else None
    return img


def upright_size(path: str | Path, policy: ReadPolicy = PHOTOS) -> tuple[int, int]:
    """(W, H) of the image :func:`read_image` returns for ``path`` without ``reduce_to``, from the header alone: the
    stored size, its sides swapped when ``policy`` applies an EXIF orientation that turns the picture (5-8). What a
    reduced decode came from: its own aspect cannot say which way up a near-square file is (801x802 decoded at 1/8
    is 101x101)."""
    with Image.open(path) as img:
        w, h = img.size
        try:
            turned = policy.exif and img.getexif().get(ORIENTATION_TAG) in TURNED
        except Exception:  # noqa: BLE001 - read_image ignores (and logs) a damaged EXIF block too
            turned = False
    return (h, w) if turned else (w, h)


def reduced(img: Image.Image, reduce_to: int) -> Image.Image:
    """``img`` box-reduced by the largest integer factor that keeps its shorter side at least ``2 * reduce_to``
    (unchanged when that factor is 1, or for a mode ``Image.reduce`` does not handle)."""
    factor = min(img.size) // (2 * reduce_to)
    if factor < 2:
        return img
    try:
        out = img.reduce(factor)
    except ValueError:
        return img
    out.info.update(img.info)
    return out


_CLIP_WARNED: list[Path] = []  # the 16-bit clipping of metric reading is logged once per process


def conversion_note(img: Image.Image) -> str | None:
    """What :func:`read_image` did to turn the file into 8-bit RGB (``None``: nothing, it was RGB, upright and had one
    frame)."""
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

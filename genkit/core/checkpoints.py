"""Loading ``torch.save`` files safely and writing them atomically.

Safely means: the zip archive's declared sizes are checked before anything is inflated (a re-zipped "zip bomb"
checkpoint is refused in milliseconds, at no memory cost), only tensors and plain types are unpickled
(``weights_only=True``), and weights holding NaN or infinite values are refused, naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from genkit.core.errors import CheckpointError
from genkit.core.files import atomic_write_bytes

# torch.save stores every record uncompressed, so a genuine checkpoint declares about its own file size; this is
# generous for one re-compressed by hand, and refuses archives that would inflate far beyond what they hold.
MAX_INFLATION = 4
INFLATION_SLACK = 64 << 20  # bytes


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def check_archive(path: str | Path, what: str = "checkpoint", error: type[Exception] = CheckpointError) -> None:
    """Refuse a zip archive whose entries declare more uncompressed bytes than :data:`MAX_INFLATION` times the
    file plus :data:`INFLATION_SLACK` (a decompression bomb), from its central directory alone."""
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise error(f"{path}: not a readable {what} archive ({exc})") from None
    size = path.stat().st_size
    limit = MAX_INFLATION * size + INFLATION_SLACK
    if declared > limit:
        raise error(f"{path}: refused as a possible decompression bomb: its zip entries declare {_size(declared)} "
                    f"uncompressed in a {_size(size)} file (limit {_size(limit)}); nothing was inflated")


def nonfinite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a (nested) dict that hold NaN or infinite values."""
    import torch

    if torch.is_tensor(tree):
        return [prefix or "tensor"] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    if isinstance(tree, dict):
        return [n for k, v in tree.items() for n in nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k))]
    return []


def check_finite_weights(ckpt: dict, path: str | Path, what: str = "checkpoint") -> None:
    """Refuse a checkpoint whose weights (its ``state_dict``, or the file itself when it is a bare state dict) hold
    NaN or infinite values: a model that diverged, whose outputs would be silently meaningless."""
    weights = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else ckpt
    bad = nonfinite_tensors(weights)
    if bad:
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise CheckpointError(f"{path}: the {what} holds NaN or infinite weights ({bad[0]}{more}): the training "
                              "that wrote it diverged; use an earlier checkpoint or retrain with a lower learning rate")


def load_checkpoint(path: str | Path, what: str = "checkpoint", *, mmap: bool = False, finite: bool = True) -> dict:
    """A ``torch.save`` dict loaded safely (archive sizes checked first, ``weights_only=True``: tensors and plain
    types, no arbitrary unpickling, finite weights); every failure is a
    :class:`~genkit.core.errors.CheckpointError` naming the file. ``mmap``: map the tensors instead of reading them;
    ``finite=False`` skips the weights check (which reads every weight), for a quick look at the metadata."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint, so it cannot be loaded safely as a {what}")
    check_archive(path, what)
    try:
        import torch

        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: holds objects that cannot be loaded safely with weights_only=True "
                              f"({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a genkit {what} (got {type(ckpt).__name__})")
    if finite:
        check_finite_weights(ckpt, path, what)
    return ckpt


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    import torch

    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())

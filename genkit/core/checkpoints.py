"""Loading ``torch.save`` files safely (``weights_only``) and writing them atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from genkit.core.errors import CheckpointError
from genkit.core.files import atomic_write_bytes


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """A ``torch.save`` dict loaded safely (``weights_only=True``: tensors and plain types, no arbitrary
    unpickling); every failure is a :class:`~genkit.core.errors.CheckpointError` naming the file."""
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

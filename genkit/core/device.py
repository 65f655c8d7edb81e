"""The one device policy of genkit: ``auto`` (the default everywhere) is CUDA when available, else CPU."""

from __future__ import annotations

import torch

from genkit.core.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` / ``None`` -> ``cuda`` if available else ``cpu``; ``cpu``, ``cuda``, ``cuda:1``... as given.

    An unknown name or CUDA asked for on a machine without it is a :class:`~genkit.core.errors.ConfigError` (one
    clear line on the command line), not a failure deep inside the first ``.to(device)``.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {str(device)!r} ({exc}); use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r} requested but CUDA is not available on this machine "
                          "(use auto or cpu)")
    return dev

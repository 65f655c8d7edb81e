"""genkit: one toolkit for mask-guided portrait editing (cGAN) and deep-feature-reshuffle style transfer.

The main entry points, importable from the top level::

    from genkit import stylize, Stylizer, PortraitEditor, load_parser, fid, kid, lpips

``fid``, ``kid`` and ``lpips`` compare two image folders (``fid`` also takes ``.npz`` statistics) and return the
value with its protocol record. Names are imported on first use (PEP 562), so ``import genkit`` and
``genkit --help`` stay fast; type checkers and IDEs read the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

import importlib
import os as _os
from typing import TYPE_CHECKING

# OpenMP threads that busy-wait between parallel regions slow the many small ops of patch matching ~5x when
# the cores are shared (measured on 2-core machines). Set before torch loads; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from genkit.core import moved as _moved

_moved.install()  # module paths recorded by genkit 0.2 (checkpoints, run records) still import

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

# name -> "module:attribute"
_EXPORTS = {
    "stylize": "genkit.models.reshuffle.api:stylize",
    "Stylizer": "genkit.models.reshuffle.api:Stylizer",
    "StyleResult": "genkit.models.reshuffle.api:StyleResult",
    "PortraitEditor": "genkit.models.portrait.editor:PortraitEditor",
    "EditResult": "genkit.models.portrait.editor:EditResult",
    "fid": "genkit.metrics.fid:fid_between",
    "kid": "genkit.metrics.kid:kid_between",
    "lpips": "genkit.metrics.lpips:lpips_between",
    "load_parser": "genkit.models.parsing.checkpoint:load_parser",
    "GenkitError": "genkit.core.errors:GenkitError",
}

if TYPE_CHECKING:
    from genkit.core.errors import GenkitError
    from genkit.metrics.fid import fid_between as fid
    from genkit.metrics.kid import kid_between as kid
    from genkit.metrics.lpips import lpips_between as lpips
    from genkit.models.parsing.checkpoint import load_parser
    from genkit.models.portrait.editor import EditResult, PortraitEditor
    from genkit.models.reshuffle.api import StyleResult, Stylizer, stylize

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

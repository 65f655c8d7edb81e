"""Module paths that moved in genkit 0.3, so what older versions wrote keeps loading.

Checkpoints and run records written by genkit 0.2 name classes and functions by their ``_target_`` path
(``genkit.optim.cosine_schedule``, ``genkit.callbacks.preemption.PreemptibleCheckpoint``, ...). An import hook
serves each old module name as its new module, and :func:`current_targets` rewrites recorded paths so a resumed
run's config compares equal to today's.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {  # old module -> new module (0.2 -> 0.3)
    "genkit.errors": "genkit.core.errors",
    "genkit.device": "genkit.core.device",
    "genkit.weights": "genkit.core.weights",
    "genkit.console": "genkit.core.console",
    "genkit.optim": "genkit.nn.schedules",
    "genkit.runs": "genkit.training.runs",
    "genkit.tracking": "genkit.training.tracking",
    "genkit.sweep": "genkit.training.sweep",
    "genkit.callbacks": "genkit.training.callbacks",
    "genkit.demo": "genkit.apps.demo.pipeline",
    "genkit.demo_plots": "genkit.apps.demo.plots",
    "genkit.report": "genkit.apps.demo.report",
}


def current_module(name: str) -> str:
    """Today's name of module ``name`` (itself when it did not move)."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return name


def current_targets(obj):
    """``obj`` (nested dicts/lists, e.g. a recorded config) with every moved ``_target_`` path rewritten."""
    if isinstance(obj, dict):
        out = {k: current_targets(v) for k, v in obj.items()}
        if isinstance(out.get("_target_"), str):
            module, _, attr = out["_target_"].rpartition(".")
            out["_target_"] = f"{current_module(module)}.{attr}" if module else out["_target_"]
        return out
    if isinstance(obj, list):
        return [current_targets(v) for v in obj]
    return obj


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as the module it moved to (the same module object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        if current_module(fullname) == fullname:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(current_module(spec.name))

    def exec_module(self, module):
        sys.modules[module.__name__] = module  # keep the new module under its old name too


def install() -> None:
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())  # before the path finder, which would load a second copy

"""Option values checked before a run starts, so a bad one is one line naming the option and no run folder is
left behind (torch would refuse a negative learning rate only inside the fit, with a traceback, and would accept
NaN and train nothing)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from genkit.core.errors import ConfigError
from genkit.training.runs import flatten

# key names (the last part of a dotted config key, anywhere under model.) and what their values must be
POSITIVE = ("lr",)
NON_NEGATIVE = ("weight_decay", "eps", "momentum")
UNIT_INTERVAL = ("betas",)  # each in [0, 1)


def _bad(key: str, value: Any) -> str | None:
    name = key.rsplit(".", 1)[-1]
    values = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
        return "must be a number" if name in POSITIVE + NON_NEGATIVE + UNIT_INTERVAL else None
    if not all(math.isfinite(v) for v in values):
        return "must be a finite number"
    if name in POSITIVE:
        return None if all(v > 0 for v in values) else "must be a positive number"
    if name in NON_NEGATIVE:
        return None if all(v >= 0 for v in values) else "must be >= 0"
    if name in UNIT_INTERVAL:
        return None if all(0 <= v < 1 for v in values) else "must be in [0, 1)"
    return None


def check_model_values(model_cfg: dict) -> None:
    """Learning rates (``lr``) positive and finite, ``weight_decay``/``eps``/``momentum`` >= 0, ``betas``
    in [0, 1), anywhere under ``model.``; otherwise a :class:`ConfigError` naming the key and the value."""
    for key, value in flatten(model_cfg or {}, "model.").items():
        name = key.rsplit(".", 1)[-1]
        if name in POSITIVE + NON_NEGATIVE + UNIT_INTERVAL:
            problem = _bad(key, value)
            if problem:
                raise ConfigError(f"{key}={value}: {problem}")

"""From a model config to objects, one way for every LightningModule.

A module keeps its sub-configs as **plain hyper-parameters** (dicts, lists, numbers: checkpoints load with
``weights_only=True``) and builds its objects from them:

- :func:`build`: a sub-config with ``_target_`` (default: a class the module names) -> the object, or with
  ``_partial_: true`` a ``functools.partial``;
- :func:`factory`: an optimiser / scheduler / EMA factory from a partial config, a callable, or ``None`` (the
  module's default partial). A config naming the default's target is merged over the default's arguments;
- :func:`plain`: any of these back to plain data.

Each default is written once: in the signature of the class or function it belongs to, or in the module's
default ``functools.partial``; ``conf/model/*.yaml`` shows the same values and a test keeps the two equal.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

from genkit.core.errors import ConfigError

META_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_")


def qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def plain(value: Any) -> Any:
    """Hydra containers, dataclasses, partials and callables as plain dicts/lists (checkpoint hyper-parameters)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, functools.partial):
        return {"_target_": qualname(value.func), "_partial_": True, **plain(dict(value.keywords))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"_target_": qualname(type(value)), **plain(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if callable(value) and not isinstance(value, (str, bytes)):
        return {"_target_": qualname(value), "_partial_": True}
    return value


def _resolve(target: str, key: str):
    import hydra.utils

    try:
        return hydra.utils.get_object(target)
    except Exception as exc:  # hydra raises ImportError or its own errors
        raise ConfigError(f"model.{key}._target_: cannot import {target!r} ({exc})") from None


def _check_keywords(fn: Callable, cfg: dict, key: str) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = set(cfg) - set(params)
    if unknown:
        raise ConfigError(f"model.{key}: {qualname(fn)} has no argument {', '.join(sorted(unknown))}")


def build(cfg: dict | None, default: Callable | None, key: str, **inject):
    """The object of sub-config ``model.<key>``: ``_target_`` (default ``default``) called with the config's
    values and ``inject``; with ``_partial_: true`` a ``functools.partial`` instead."""
    cfg = dict(plain(cfg) or {})
    target = cfg.pop("_target_", None)
    partial = bool(cfg.pop("_partial_", False))
    for k in META_KEYS:
        cfg.pop(k, None)
    fn = _resolve(target, key) if target else default
    if fn is None:
        raise ConfigError(f"model.{key}: no _target_ given and no default")
    clash = set(cfg) & set(inject)
    if clash:
        raise ConfigError(f"model.{key} must not set {', '.join(sorted(clash))} (they come from the model: "
                          f"{', '.join(f'{k}={v!r}' for k, v in inject.items() if k in clash)})")
    try:
        if partial:
            _check_keywords(fn, cfg, key)
            return functools.partial(fn, **inject, **cfg)
        return fn(**inject, **cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.{key}: {exc}") from None


def factory(value: Any, default: functools.partial | None, key: str) -> Callable | None:
    """An optimiser / scheduler / EMA factory: ``value`` as a callable, a partial config merged over ``default``
    (when it names the default's target or none), or ``default`` itself when ``value`` is ``None``."""
    if value is None:
        return default
    if callable(value) and not isinstance(value, dict):
        return value
    given = dict(plain(value))
    cfg = plain(default) if default is not None else {}
    if "_target_" in given and given["_target_"] != cfg.get("_target_"):
        cfg = {}  # another function: none of the default's arguments apply
    cfg.update(given)
    cfg["_partial_"] = True
    return build(cfg, None, key)

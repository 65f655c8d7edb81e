"""The sub-configs of :class:`~genkit.models.portrait.module.PortraitGAN` and how they become objects.

``model.*`` in ``conf/model/portrait.yaml`` is a set of small blocks, each mapping to one class::

    generator       _target_ PortraitGenerator       (widths, VAE, background branch, paste band)
    discriminator   _target_ MultiScaleDiscriminator  (built twice: paired and transfer)
    losses          _target_ LossWeights             (weights, GAN mode, KL calibration)
    scheme          _target_ TrainingScheme          (paired/transfer steps, background hiding, hair removal)
    optimizer_g/_d  _target_ torch.optim.Adam, _partial_: true
    scheduler       _target_ constant_then_linear, _partial_: true
    ema             _target_ WarmupEMA, _partial_: true  (null: no EMA)
    parser          _target_ ParserSettings          (checkpoint, class weights)
    validation      _target_ ValidationSettings      (LPIPS, FID)

The model config sets ``_recursive_: false``: the LightningModule receives these blocks as plain dicts, keeps
them as its hyper-parameters (so checkpoints load with ``weights_only=True``) and builds the objects itself.
From Python, partial dicts work too (missing keys take the defaults), and optimiser/scheduler/EMA factories
may be given as ``functools.partial`` objects.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

from genkit.core.errors import ConfigError

META_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_")


@dataclass
class TrainingScheme:
    """``model.scheme``: how training iterations are made.

    * every ``unpaired_every``-th iteration is a transfer step (components of another face, each taken with
      ``swap_probability``, at least one); the others are paired reconstructions;
    * the background encoder never sees the pixels within a random distance of the face: up to ``hide_small`` px
      (at 256 px), and with ``hide_large_probability`` up to ``hide_large`` px, so the generator learns to fill
      background that an edit uncovers (a smaller face);
    * with ``hair_removal_probability`` a paired sample has its hair removed from the target mask and the ground
      truth shows the true background there (needs ``batch["background"]``, which synthetic faces provide);
    * with ``hole_probability`` a sample also has free-form holes hidden in its own visible background
      (:mod:`genkit.models.portrait.holes`), filled by the generator and scored against the photo: self-supervised
      background filling that works on real photos, which have no true background behind the hair.
    """

    unpaired_every: int = 2
    swap_probability: float = 0.5
    hide_small: float = 8.0
    hide_large: float = 48.0
    hide_large_probability: float = 0.5
    hair_removal_probability: float = 0.25
    hole_probability: float = 0.5

    def __post_init__(self):
        if self.unpaired_every < 0:
            raise ValueError("unpaired_every must be >= 0 (0 = only paired steps)")
        for name in ("swap_probability", "hide_large_probability", "hair_removal_probability", "hole_probability"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0 <= self.hide_small <= self.hide_large:
            raise ValueError("need 0 <= hide_small <= hide_large")


@dataclass
class ParserSettings:
    """``model.parser``: the frozen face parser of the parsing loss and the mask-consistency metric.

    ``class_weights``: ``auto`` (the weights the parser was trained with, i.e. its class frequencies; else
    median-frequency weights counted on the training data at the start of training), ``none``, or one weight per
    class (the authors used ``[0.2, 1, 5, 5, 5, 5, 3, 8, 8, 8, 1]``)."""

    checkpoint: str | None = None
    random_init: bool = False
    class_weights: Any = "auto"

    def __post_init__(self):
        cw = self.class_weights
        if cw is None:
            self.class_weights = "none"
        elif isinstance(cw, str):
            if cw not in ("auto", "none"):
                raise ValueError(f"class_weights must be auto, none or a list of numbers, got {cw!r}")
        else:
            self.class_weights = [float(v) for v in cw]


@dataclass
class ValidationSettings:
    """``model.validation``: ``lpips`` (reconstruction vs real) and ``fid`` (transfers vs real; ``auto`` = when
    the Inception weights are installed or random weights are allowed)."""

    lpips: bool = True
    fid: Any = False

    def __post_init__(self):
        if not isinstance(self.fid, bool) and self.fid != "auto":
            raise ValueError(f"fid must be true, false or auto, got {self.fid!r}")


def plain(value: Any) -> Any:
    """Hydra containers, dataclasses and partials as plain dicts/lists (checkpoint hyper-parameters)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, functools.partial):
        return {"_target_": _qualname(value.func), "_partial_": True, **plain(dict(value.keywords))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"_target_": _qualname(type(value)), **plain(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if callable(value) and not isinstance(value, (str, bytes)):
        return {"_target_": _qualname(value), "_partial_": True}
    return value


def _qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _resolve(target: str, key: str):
    import hydra.utils

    try:
        return hydra.utils.get_object(target)
    except Exception as exc:  # hydra raises ImportError or its own errors
        raise ConfigError(f"model.{key}._target_: cannot import {target!r} ({exc})") from None


def build(cfg: dict | None, default: Callable, key: str, **inject):
    """The object of sub-config ``model.<key>``: ``_target_`` (default ``default``) called with the config's
    values and ``inject``; with ``_partial_: true`` a ``functools.partial`` instead."""
    cfg = dict(cfg or {})
    target = cfg.pop("_target_", None)
    partial = bool(cfg.pop("_partial_", False))
    for k in META_KEYS:
        cfg.pop(k, None)
    factory = _resolve(target, key) if target else default
    clash = set(cfg) & set(inject)
    if clash:
        raise ConfigError(f"model.{key} must not set {', '.join(sorted(clash))} (they come from the model: "
                          f"{', '.join(f'{k}={v!r}' for k, v in inject.items() if k in clash)})")
    try:
        if partial:
            _check_keywords(factory, cfg, key)
            return functools.partial(factory, **inject, **cfg)
        return factory(**inject, **cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.{key}: {exc}") from None


def _check_keywords(factory: Callable, cfg: dict, key: str) -> None:
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = set(cfg) - set(params)
    if unknown:
        raise ConfigError(f"model.{key}: {_qualname(factory)} has no argument {', '.join(sorted(unknown))}")


def factory(value: Any, default: dict, key: str) -> Callable:
    """An optimiser / scheduler / EMA factory from a partial dict (merged over ``default``) or a callable."""
    if callable(value) and not isinstance(value, dict):
        return value
    cfg = dict(default)
    if value:
        given = dict(value)
        if "_target_" in given and given["_target_"] != default.get("_target_"):
            cfg = {}  # another class: none of the default's arguments apply
        cfg.update(given)
    cfg["_partial_"] = True
    return build(cfg, None, key)

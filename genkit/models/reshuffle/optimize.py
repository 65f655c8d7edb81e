"""Reconstruction by optimisation: the path that needs only the encoder (no trained decoder).

By default every level reshuffles the content image's own features (the assignment still goes coarse to fine)
and one image is optimised at the end, starting from the content, so its features match the blended targets of
all levels (each error normalised by its target's mean square, optionally plus a Gram term against the style).
The blends are not carried down, so each level blends the content at the running product of the alphas (the
content share a carried cascade gives; ``content_share="release"``). ``level_steps`` > 0 carries them instead,
through an image optimised at every level (slower; docs/style-transfer.md compares them).

Every solve stops after ``steps`` evaluations (never more: L-BFGS's line search is cut off at the budget), or once
its loss falls by less than ``tolerance`` (relative) over ``check_every`` evaluations. ``coarse_steps`` > 0 first
solves at half resolution against 2x average-pooled targets (coarse-to-fine image resolution). :func:`gram_transfer`
is the Gram-only (Gatys et al.) baseline on the same optimiser.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from genkit.core.device import resolve_device
from genkit.core.errors import ConfigError
from genkit.models.reshuffle.stats import now


@dataclass
class OptimizeSettings:
    steps: int = 50  # at most this many loss evaluations in the final solve (L-BFGS: function evaluations)
    optimizer: str = "lbfgs"  # or "adam"
    lr: float | None = None  # default: 1.0 for L-BFGS, 0.02 for Adam
    gram_weight: float = 0.0
    tolerance: float = 0.02  # stop when the loss falls by less than this (relative) over check_every evaluations
    check_every: int = 10
    level_steps: int | None = 0  # an image solved at every earlier level too, this many evaluations (None: steps)
    coarse_steps: int = 0  # a half-resolution solve of this many evaluations before each full one (0: off)
    targets: str = "finest"  # the final solve matches the finest level's target ("all": every level's, genkit 0.3)

    def __post_init__(self):
        if self.optimizer not in ("lbfgs", "adam"):
            raise ConfigError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.steps < 1:
            raise ConfigError(f"optimisation steps must be >= 1, got {self.steps}")
        if self.gram_weight < 0:
            raise ConfigError("gram_weight must be >= 0")
        if self.tolerance < 0 or self.check_every < 1:
            raise ConfigError("tolerance must be >= 0 and check_every >= 1")
        if self.level_steps is not None and self.level_steps < 0:
            raise ConfigError(f"level_steps must be >= 0 or None, got {self.level_steps}")
        if self.targets not in ("finest", "all"):
            raise ConfigError(f"targets must be 'finest' or 'all', got {self.targets!r}")
        if self.coarse_steps < 0:
            raise ConfigError(f"coarse_steps must be >= 0, got {self.coarse_steps}")

    def to_dict(self) -> dict:
        return asdict(self)


def gram(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by the number of positions."""
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return x @ x.transpose(1, 2) / (h * w)


def normalized_error(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (f - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-8)


class _BudgetSpent(Exception):
    """Raised by the L-BFGS closure asked for one evaluation past the budget."""


def minimize(x0: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], settings: OptimizeSettings,
             steps: int | None = None, clamp: tuple[float | None, float | None] = (0.0, 1.0)) -> tuple[torch.Tensor, dict]:
    """Minimise ``loss_fn(x)`` from ``x0`` with the settings' optimiser; returns ``(x, info)``.

    ``clamp``: the box ``x`` is projected onto after Adam steps and at the end (L-BFGS runs unconstrained).
    Stops after ``steps`` evaluations (never more) or once the loss falls by less than ``settings.tolerance``
    (relative) over ``settings.check_every`` evaluations; ``info["stopped_early"]`` is true only when the latter
    stopped it before the budget was spent.

    L-BFGS: each ``opt.step`` evaluates its starting point once, and torch's strong-Wolfe line search evaluates its
    first trial point before it counts against ``max_eval``, so a step can take ``max_eval + 1`` evaluations
    (``max_iter``/``max_eval`` bound one step, not a run). Each step is therefore given ``max_eval`` one below the
    evaluations left, and the closure refuses any evaluation past the budget, whatever the torch version's line search
    asks for; a line search cut off that way leaves ``x`` at the best point evaluated.
    """
    s = settings
    budget = s.steps if steps is None else steps
    x = x0.detach().clone().requires_grad_(True)
    evals, last = 0, None
    best: tuple[float, torch.Tensor | None] = (math.inf, None)  # L-BFGS: the lowest loss evaluated, and where
    history: list[float] = []
    t0 = now(x0)
    lbfgs = s.optimizer != "adam"

    def closure():
        nonlocal evals, last, best
        if evals >= budget:
            raise _BudgetSpent
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        evals += 1
        last = float(loss.detach())
        if lbfgs and last < best[0]:
            best = (last, x.detach().clone())
        return loss

    stopped = False
    with torch.enable_grad():
        if s.optimizer == "adam":
            opt = torch.optim.Adam([x], lr=s.lr or 0.02)
        else:
            opt = torch.optim.LBFGS([x], lr=s.lr or 1.0, max_iter=s.check_every, max_eval=s.check_every,
                                    history_size=20, tolerance_grad=1e-10, tolerance_change=1e-14,
                                    line_search_fn="strong_wolfe")
        while evals < budget:
            before = evals
            if s.optimizer == "adam":
                for _ in range(min(s.check_every, budget - evals)):
                    opt.step(closure)
                    with torch.no_grad():
                        x.clamp_(*clamp)
            else:
                chunk = min(s.check_every, budget - evals)
                # one below: the line search's first trial point is not counted against max_eval
                opt.param_groups[0]["max_iter"], opt.param_groups[0]["max_eval"] = chunk, max(chunk - 1, 1)
                try:
                    opt.step(closure)
                except _BudgetSpent:  # the budget ran out inside a line search: keep the best point evaluated
                    if best[1] is not None:
                        with torch.no_grad():
                            x.copy_(best[1])
                    break
            if evals == before:  # L-BFGS converged (zero gradient)
                stopped = True
                break
            history.append(last)
            if len(history) > 1 and history[-2] - history[-1] < s.tolerance * abs(history[-2]):
                stopped = True
                break
    with torch.no_grad():
        x = x.detach().clamp(*clamp)
        final = float(loss_fn(x))
    return x, {"iterations": evals, "seconds": now(x0) - t0, "final_loss": final,
               "stopped_early": stopped and evals < budget}


@dataclass
class OptimizationReconstructor:
    """Optimises the output image against every level's target (see the module docstring)."""

    encoder: torch.nn.Module
    settings: OptimizeSettings = field(default_factory=OptimizeSettings)
    style_grams: dict[str, torch.Tensor] | None = None
    history: list[dict] = field(default_factory=list)

    name = "optimize"
    needs_targets = True

    @property
    def carries(self) -> bool:
        """Only with ``level_steps`` does the next level start from an image solved for the blends so far."""
        return self.settings.level_steps is None or self.settings.level_steps > 0

    def loss(self, image: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over ``targets`` of the normalised feature error of ``image`` (+ the weighted Gram term)."""
        grams = self.style_grams if self.settings.gram_weight > 0 else None
        taps = set(targets) | set(grams or {})
        feats = self.encoder(image, taps=taps)
        total = image.new_zeros(())
        for tap, t in targets.items():
            total = total + normalized_error(feats[tap], t)
        for tap, g in (grams or {}).items():
            err = (gram(feats[tap]) - g).pow(2).mean() / g.pow(2).mean().clamp_min(1e-12)
            total = total + self.settings.gram_weight * err
        return total

    def _solve(self, tap: str, ctx: dict, steps: int) -> torch.Tensor:
        """Optimise the current image (the content at first) against every target so far."""
        targets = {k: v.detach() for k, v in ctx["targets"].items()}
        if self.settings.targets == "finest":  # as the release decodes only the finest blend
            targets = {tap: targets[tap]}
        x = ctx.get("image", ctx["content"])
        t0 = now(x)
        evals = 0
        if self.settings.coarse_steps and min(x.shape[-2:]) >= 64:
            half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
            pooled = {k: F.avg_pool2d(v, 2) for k, v in targets.items()}
            half, info = minimize(half, lambda im: self.loss(im, pooled), self.settings, steps=self.settings.coarse_steps)
            evals += info["iterations"]
            # the half-resolution change, upsampled, on top of the full-resolution content
            low = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
            x = (x + F.interpolate(half - low, size=x.shape[-2:], mode="bilinear", align_corners=False)).clamp(0, 1)
        x, info = minimize(x, lambda im: self.loss(im, targets), self.settings, steps=steps)
        evals += info["iterations"]
        seconds = now(x) - t0
        self.history.append({"tap": tap, "stage": tap, "iterations": evals, "seconds": seconds,
                             "seconds_per_iteration": seconds / max(evals, 1), "final_loss": info["final_loss"],
                             "stopped_early": info["stopped_early"]})
        ctx["image"] = x
        return x

    def next_features(self, tap: str, next_tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor:
        steps = self.settings.steps if self.settings.level_steps is None else self.settings.level_steps
        if steps == 0:
            with torch.no_grad():
                return self.encoder.encode(ctx["content"], next_tap)
        x = self._solve(tap, ctx, steps)
        with torch.no_grad():
            return self.encoder.encode(x, next_tap)

    def image(self, tap: str, blend: torch.Tensor, ctx: dict) -> torch.Tensor:
        return self._solve(tap, ctx, self.settings.steps)


def gram_transfer(content, style, *, encoder: torch.nn.Module | None = None, size: int | None = 256,
                  style_size: int | None = None, content_tap: str = "relu4_1",
                  style_taps: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                  style_weight: float = 1.0, optimize: OptimizeSettings | dict | None = None,
                  allow_random: bool = False, vgg_weights: str | None = None, device: str | torch.device = "cpu",
                  reading=None, vgg_variant: str = "torchvision"):
    """Gram-only style transfer (Gatys et al. 2016) on the same optimiser: a baseline for comparisons.

    Optimises the image, starting from the content, to match the content's ``content_tap`` features and the
    style's Gram matrices at ``style_taps`` (each error normalised by its target's mean square, the Gram term
    weighted by ``style_weight``). Returns a :class:`~genkit.models.reshuffle.api.StyleResult` without level
    statistics. An image too small for the deepest tap (fewer than 3x3 positions there) is refused, before the
    encoder is built, with the reshuffle path's error (:func:`~genkit.models.reshuffle.api.check_processing_side`).
    """
    from genkit.core import weights
    from genkit.models.reshuffle.api import StyleResult, _name_of, resize, target_size, to_tensor

    settings = optimize if isinstance(optimize, OptimizeSettings) else OptimizeSettings(**(optimize or {}))
    t_start = time.perf_counter()
    taps = sorted(set(style_taps) | {content_tap}, key=lambda t: (int(t[4]), int(t[6:])))
    c = to_tensor(content, "content", reading)
    out_size = target_size(c.shape[-2:], size)  # the exact size; processed at the nearest multiples of 16
    c = resize(c, _gram_processing_size(c, taps, _name_of(content, "content"), size, "size"))
    s = to_tensor(style, "style", reading)
    s = resize(s, _gram_processing_size(s, taps, _name_of(style, "style"), style_size or size, "style_size"))
    if encoder is None:
        from genkit.nn.vgg import VGG19Encoder

        encoder = VGG19Encoder.from_option(taps, vgg_weights, allow_random, vgg_variant)
    device = resolve_device(device)
    encoder = encoder.to(device).eval()
    c, s = c.to(device), s.to(device)
    with torch.no_grad():
        target = encoder.encode(c, content_tap)
        grams = {t: gram(f) for t, f in encoder(s, taps=style_taps).items()}

    def loss(x):
        feats = encoder(x, taps=taps)
        total = normalized_error(feats[content_tap], target)
        for t, g in grams.items():
            total = total + style_weight * (gram(feats[t]) - g).pow(2).mean() / g.pow(2).mean().clamp_min(1e-12)
        return total

    x, info = minimize(c, loss, settings)
    processed = tuple(x.shape[-2:])
    x = resize(x.detach().cpu(), out_size)
    record = {"tap": "image", "stage": "gram", **info, "seconds_per_iteration": info["seconds"] / max(info["iterations"], 1)}
    return StyleResult(image=x[0].cpu(), levels=[], settings={
        "reconstruction": "gram_transfer", "encoder": getattr(encoder, "identity", None), "content_tap": content_tap, "style_taps": list(style_taps),
        "style_weight": style_weight, "size": size, "style_size": style_size, "optimize": settings.to_dict()},
        timings={"total": time.perf_counter() - t_start}, random_weights=bool(getattr(encoder, "random_weights", False))
        or weights.used_random_weights(), weights=weights.provenance(), content_name=_name_of(content, "content"),
        style_name=_name_of(style, "style"), optimization=[record],
        processing_size=None if processed == out_size else [processed[1], processed[0]])


def _gram_processing_size(image: torch.Tensor, taps: Sequence[str], name: str, long_side: int | None,
                          option: str) -> tuple[int, int]:
    """The (H, W) :func:`gram_transfer` runs ``image`` at (long side ``long_side``, multiples of 16); refused when
    the deepest tap would see fewer than 3x3 positions (a Gram matrix of a few positions is no texture statistic)."""
    from genkit.models.reshuffle.api import check_processing_side
    from genkit.nn.vgg import VGG19_STRIDE

    deepest = max(taps, key=lambda t: VGG19_STRIDE.get(t, 1))  # an unknown tap: the encoder names it
    stride = VGG19_STRIDE.get(deepest, 1)
    return check_processing_side(image.shape[-2:], 3 * stride, 16, name, long_side, option, None,
                                 f"at {deepest} (stride {stride}) its feature map would be smaller than 3x3 "
                                 "positions", "shallower taps")

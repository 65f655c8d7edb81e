"""Reconstruction by image optimisation: find an image whose VGG features match the reshuffled targets.

Slow (a VGG forward and backward per iteration) but needs only the encoder: the reference path, and the one
to use when no trained decoder exists. The loss is the mean squared feature error at every level reached so
far, each normalised by its target's mean square, plus an optional Gram-matrix term against the style.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from genkit.errors import ConfigError
from genkit.models.reshuffle.stats import now


@dataclass
class OptimizeSettings:
    steps: int = 50  # optimiser iterations per level (L-BFGS: function evaluations)
    optimizer: str = "lbfgs"  # or "adam"
    lr: float | None = None  # default: 1.0 for L-BFGS, 0.02 for Adam
    gram_weight: float = 0.0

    def __post_init__(self):
        if self.optimizer not in ("lbfgs", "adam"):
            raise ConfigError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.steps < 1:
            raise ConfigError(f"optimisation steps must be >= 1, got {self.steps}")
        if self.gram_weight < 0:
            raise ConfigError("gram_weight must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def gram(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by the number of positions."""
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return x @ x.transpose(1, 2) / (h * w)


@dataclass
class OptimizationReconstructor:
    """Reconstructs an image for the targets of all levels so far, starting from the current image."""

    encoder: torch.nn.Module
    settings: OptimizeSettings = field(default_factory=OptimizeSettings)
    style_grams: dict[str, torch.Tensor] | None = None
    history: list[dict] = field(default_factory=list)

    name = "optimize"

    def loss(self, image: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        taps = set(targets) | (set(self.style_grams or {}) if self.settings.gram_weight > 0 else set())
        feats = self.encoder(image, taps=taps)
        total = image.new_zeros(())
        for tap, t in targets.items():
            total = total + (feats[tap] - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-8)
        if self.settings.gram_weight > 0 and self.style_grams:
            for tap, g in self.style_grams.items():
                err = (gram(feats[tap]) - g).pow(2).mean() / g.pow(2).mean().clamp_min(1e-12)
                total = total + self.settings.gram_weight * err
        return total

    def __call__(self, tap: str, features: torch.Tensor, image: torch.Tensor,
                 targets: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.settings
        targets = {k: v.detach() for k, v in targets.items()}
        x = image.detach().clone().requires_grad_(True)
        evals = 0
        t0 = now(image)
        with torch.enable_grad():
            if s.optimizer == "adam":
                opt = torch.optim.Adam([x], lr=s.lr or 0.02)
                for _ in range(s.steps):
                    opt.zero_grad(set_to_none=True)
                    loss = self.loss(x, targets)
                    loss.backward()
                    opt.step()
                    evals += 1
                    with torch.no_grad():
                        x.clamp_(0, 1)
            else:
                opt = torch.optim.LBFGS([x], lr=s.lr or 1.0, max_iter=s.steps, max_eval=s.steps,
                                        history_size=20, tolerance_grad=1e-10, tolerance_change=1e-14,
                                        line_search_fn="strong_wolfe")

                def closure():
                    nonlocal evals
                    opt.zero_grad(set_to_none=True)
                    loss = self.loss(x, targets)
                    loss.backward()
                    evals += 1
                    return loss

                opt.step(closure)
        seconds = now(image) - t0
        with torch.no_grad():
            final = float(self.loss(x.clamp(0, 1), targets))
        self.history.append({"tap": tap, "iterations": evals, "seconds": seconds,
                             "seconds_per_iteration": seconds / max(evals, 1), "final_loss": final})
        return x.detach().clamp(0, 1)


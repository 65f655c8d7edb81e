"""Style transfer for the app: one :class:`~genkit.models.reshuffle.api.Stylizer` per setting, sharing one VGG
encoder, and the output brought back to the content's own size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from genkit.core.errors import ConfigError

METHODS = ("reshuffle", "style-swap", "gram")
METHOD_HELP = {"reshuffle": "each style patch used a limited number of times (the paper's method)",
               "style-swap": "nearest style patch, no usage limit (the ablation)",
               "gram": "reshuffle plus a Gram-matrix style term (image optimisation only)"}


@dataclass
class StyleOutcome:
    image: Image.Image
    levels: list[dict]  # per level: tap, distinct style patches used, max usage, limit, similarity
    notes: list[str]


def parse_alphas(text: str | float | None) -> list[float] | None:
    """``0.6`` or ``0.8,0.7,0.6`` (one per level, coarse to fine) -> a list; empty -> None (the default)."""
    if text is None or str(text).strip() == "":
        return None
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"alpha: expected a number or comma-separated numbers, got {text!r}") from None
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ConfigError(f"alpha values must be in [0, 1], got {text!r}")
    return values


class StyleService:
    """``decoder``: a decoder checkpoint (the fast path); otherwise image optimisation with ``steps``."""

    def __init__(self, decoder: str | None = None, allow_random: bool = False, device: str = "cpu",
                 steps: int = 30, vgg_weights: str | None = None):
        self.decoder, self.allow_random, self.device = decoder, allow_random, device
        self.steps, self.vgg_weights = steps, vgg_weights
        self._encoder = None

    @property
    def path(self) -> str:
        return "decoder" if self.decoder else "optimisation"

    def stylizer(self, method: str, alpha: list[float] | None, size: int):
        from genkit.models.reshuffle.api import Stylizer
        from genkit.models.reshuffle.optimize import OptimizeSettings

        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if method == "gram" and self.decoder:
            raise ConfigError("the Gram term works with image optimisation; this app was started with --decoder")
        optimize = False if self.decoder else OptimizeSettings(steps=self.steps,
                                                               gram_weight=1.0 if method == "gram" else 0.0)
        st = Stylizer(decoder=self.decoder, optimize=optimize, size=size, device=self.device,
                      allow_random=self.allow_random, vgg_weights=self.vgg_weights, encoder=self._encoder,
                      alpha=alpha, max_usage=None if method == "style-swap" else "auto")
        self._encoder = st.encoder  # built once: the next setting reuses it
        return st

    def __call__(self, content: Image.Image, style: Image.Image, method: str = "reshuffle",
                 alpha: list[float] | None = None, size: int = 256, content_mask: np.ndarray | None = None,
                 style_mask: np.ndarray | None = None) -> StyleOutcome:
        st = self.stylizer(method, alpha, int(size))
        res = st(content, style, content_mask, style_mask, content_name="content", style_name="style")
        image = res.to_pil()
        if image.size != content.size:
            image = image.resize(content.size, Image.BICUBIC)
        levels = [{"level": lv.tap, **lv.as_dict()} for lv in res.levels]
        notes = [f"reconstruction: {self.path}"]
        if res.random_weights:
            notes.append("RANDOM VGG weights: the result shows the pipeline working, not its quality")
        return StyleOutcome(image, levels, notes)


def usage_table(levels: list[dict]) -> str:
    """Per-level patch-usage figures as a Markdown table."""
    rows = ["| level | style patches used | max usage | usage limit | mean similarity | iterations |",
            "|---|---|---|---|---|---|"]
    for d in levels:
        rows.append(f"| {d['level']} | {d['distinct_used']} | {d['max_usage']} | {d['usage_limit']} | "
                    f"{d['mean_similarity']:.3f} | {d['iterations']} |")
    return "\n".join(rows)

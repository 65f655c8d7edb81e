"""Settings of a reshuffle transfer: per-level parameters and the global ones, with validation.

A level is one VGG-19 tap (coarse to fine). Defaults follow the official release (msracver/Style-Feature-Reshuffle):
3x3 patches at relu4_1/relu5_1 and 5x5 below, channel PCA to 80/40/20 dims at relu4_1/3_1/2_1, alpha (content
weight) 0.6 at every level, 5 match-vote-blend iterations per level, and the content's share of the finest target
``0.6**3`` on both reconstruction paths (``content_share="release"``). Departures (documented in
docs/style-transfer.md): compact patch descriptors at relu3_1/relu2_1 (``patch_dims``), a PatchMatch search
around the coarser assignment for fine levels too large for a global search, and early stopping once the matching
has settled (``tolerance``). Named options keep the earlier behaviours: ``alpha="split"`` (:func:`carried_alphas`)
and ``content_share="per_level"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from genkit.core.errors import ConfigError
from genkit.models.reshuffle.solver import UsageRule
from genkit.nn.vgg import VGG19_RELU_INDEX, VGG19_STRIDE

DEFAULT_LEVELS = ("relu4_1", "relu3_1", "relu2_1")
DEFAULT_ALPHA = 0.6  # the release's content weight
SUPPORTED_TAPS = ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1")

# per-tap defaults: patch size, channel PCA dims, patch-descriptor dims, (maximum) iterations
_TAP_DEFAULTS = {
    "relu5_1": dict(patch_size=3, pca_dims=80, patch_dims=None, iterations=5),
    "relu4_1": dict(patch_size=3, pca_dims=80, patch_dims=None, iterations=5),
    "relu3_1": dict(patch_size=5, pca_dims=40, patch_dims=64, iterations=5),
    "relu2_1": dict(patch_size=5, pca_dims=20, patch_dims=64, iterations=5),
    "relu1_1": dict(patch_size=5, pca_dims=16, patch_dims=48, iterations=5),
}

SEARCH_MODES = ("auto", "global", "local")
CONTENT_SHARES = ("release", "per_level")
STOP_MODES = ("similarity", "changed", "blend")
WARM_STARTS = ("none", "local", "all")
COLOR_MODES = (None, "luminance", "histogram")


@dataclass
class LevelConfig:
    """One level of the coarse-to-fine transfer.

    ``alpha``: weight of the content features in ``alpha*content + (1-alpha)*voted``.
    ``iterations``: at most this many match-vote-blend iterations (fewer when the target has converged).
    ``pca_dims``: channel PCA before patch extraction (None: all channels).
    ``patch_dims``: PCA of the whole patch vector (a compact descriptor; None: exact patch vectors).
    ``search``: ``global`` (chunked top-k over all style positions), ``local`` (around the previous or
    upsampled assignment), ``auto`` (global only when there is no previous assignment).
    """

    tap: str
    alpha: float = DEFAULT_ALPHA
    patch_size: int = 3
    iterations: int = 3
    pca_dims: int | None = None
    patch_dims: int | None = None
    search: str = "auto"

    def __post_init__(self):
        if self.tap not in SUPPORTED_TAPS:
            raise ConfigError(f"level {self.tap!r} is not supported; choose from {', '.join(SUPPORTED_TAPS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha at {self.tap} must be in [0, 1], got {self.alpha}")
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ConfigError(f"patch size at {self.tap} must be odd and >= 1, got {self.patch_size}")
        if self.iterations < 1:
            raise ConfigError(f"iterations at {self.tap} must be >= 1, got {self.iterations}")
        for name in ("pca_dims", "patch_dims"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name} at {self.tap} must be >= 1 or None, got {v}")
        if self.search not in SEARCH_MODES:
            raise ConfigError(f"search at {self.tap} must be one of {SEARCH_MODES}, got {self.search!r}")

    @property
    def stride(self) -> int:
        return VGG19_STRIDE[self.tap]

    @classmethod
    def default(cls, tap: str, **overrides) -> "LevelConfig":
        if tap not in _TAP_DEFAULTS:
            raise ConfigError(f"level {tap!r} is not supported; choose from {', '.join(SUPPORTED_TAPS)}")
        return cls(tap=tap, **{**_TAP_DEFAULTS[tap], **overrides})


@dataclass
class ReshuffleConfig:
    """Global settings of a transfer.

    ``max_usage``: ``"auto"`` (each style position is used ``slack * N_content / N_style`` times on average:
    the floor or the ceil of it, with an exact total), an int (that many uses at most), or None (no limit: plain
    style-swap, nearest neighbours). ``top_k``: candidates per content position in the global search.
    ``window``/``n_random``: local search (radius of the window around the previous match, random probes). The
    default window 0 keeps the current match and, like the release's PatchMatch, relies on propagation from the
    neighbours and random probes (a 3x3 window cost 15% more time for the same mean similarity, 0.8140 vs 0.8138,
    measured at relu2_1 for 512 px).
    ``tolerance``/``stop_on``: a level stops iterating once the matching has settled: ``"similarity"`` (default)
    when the mean matched similarity improves by less than ``tolerance`` from one iteration to the next,
    ``"changed"`` when less than ``tolerance`` of the positions change their match, ``"blend"`` when the blended
    target changes by less than ``tolerance`` (relative L2 norm); 0 runs every iteration.
    ``content_share``: ``"release"`` (default): the finest target keeps the release's content share ``prod(alpha)``
    on both paths; when a reconstruction does not carry the blends down (the optimisation path's default) each
    level blends the content's own features at the product of the alphas so far. ``"per_level"``: each level
    blends its own content at its own alpha (the optimisation path of genkit 0.3: 0.6 at the finest level).
    ``n_random``/``sweeps``/``knn``: the PatchMatch search (random probes per position and sweep, at radii halving
    down to 1; sweeps per search iteration; candidates kept per position for the solver).
    ``fill_probes``: random probes per radius with which the fill first looks for free style positions around each
    leftover's best candidate (0: straight to the dense passes over all free positions, slower at fine levels).
    ``swap_rounds``: rounds of exchanges along the candidate lists after the fill, each made when it raises the two
    positions' summed similarity (0: none). At 512 px (three pairs) 2 rounds raised the final similarity by up to
    0.003 (relu4_1), 0.004 (relu3_1) and 0.007-0.008 (relu2_1) for 4-16% more matching time; 4 rounds by 0.002,
    0.005-0.009 and 0.012-0.014 for 12-34%.
    ``warm_start``: where a finer level's first target blends its content with the vote of the coarser level's
    assignment, upsampled, instead of matching the content alone: ``"none"`` (default: the release's first match of
    the content), ``"local"`` at the levels that refine that assignment by local search (above ``max_global_pairs``),
    ``"all"`` at every finer level. The iterations approach the fixed point ``F = a*content + (1-a)*vote(match(F))``;
    the coarse assignment's vote starts them one step along it. At 512 px (decoder path, three pairs) ``"local"``
    took 14-29% less CPU time, raised the final similarity by 0.012-0.023 (relu3_1) and 0.018-0.032 (relu2_1) and let
    early stopping end those levels after 2-4 iterations, but the outputs keep less of the content's structure (192 px
    optimisation path: luminance SSIM with the content 0.414 -> 0.317 and 0.323 -> 0.282 on two of four pairs, the
    astronaut's figure lost in the mosaic's cells), so it is not the default.
    ``exact_fill_rows``: leftovers of the greedy pass are assigned exactly (maximum similarity) in one piece when
    at most this many are left (in exact chunks, most similar first, otherwise).
    ``max_global_pairs``: a first global search with more content x style pairs than this runs on a 2x (4x, ...)
    average-pooled grid and is refined by local search at full resolution (said so in the level metadata).
    ``chunk_elements``: the largest dense block (similarities or gathered descriptors) held at once.
    ``blend_in_place_above``: a level whose content map has more values than this builds its blend in the content's
    storage and moves it by the change of the vote at later iterations: one map fewer (0.5 GB at relu2_1 for 2048 px;
    relu2_1 and relu3_1 of a 2048 px image, no level of a 1024 px one) for a second vote per iteration.
    ``tile``: images larger than this (px) are encoded and decoded in tiles of this size (0: in one piece), so the
    convolutions' peak memory grows with the tile, not the image (:mod:`~genkit.models.reshuffle.tiling`).
    """

    levels: list[LevelConfig] = field(default_factory=lambda: [LevelConfig.default(t) for t in DEFAULT_LEVELS])
    max_usage: int | str | None = "auto"
    slack: float = 1.0
    top_k: int = 32
    window: int = 0
    n_random: int = 4
    sweeps: int = 2
    knn: int = 24
    fill_probes: int = 4
    swap_rounds: int = 2
    warm_start: str = "none"
    max_rounds: int = 200
    tolerance: float = 0.002
    stop_on: str = "similarity"
    content_share: str = "release"
    exact_fill_rows: int = 512
    max_global_pairs: int = 1 << 26
    chunk_elements: int = 1 << 22
    blend_in_place_above: int = 1 << 25
    tile: int = 768
    seed: int = 0
    preserve_color: str | None = None

    def __post_init__(self):
        if not self.levels:
            raise ConfigError("at least one level is needed")
        taps = [lv.tap for lv in self.levels]
        if len(set(taps)) != len(taps):
            raise ConfigError(f"levels repeat a tap: {taps}")
        order = [VGG19_RELU_INDEX[t] for t in taps]
        if order != sorted(order, reverse=True):
            raise ConfigError(f"levels must go coarse to fine (e.g. relu4_1,relu3_1,relu2_1), got {','.join(taps)}")
        if isinstance(self.max_usage, str) and self.max_usage != "auto":
            raise ConfigError(f"max_usage must be 'auto', an integer or None, got {self.max_usage!r}")
        if isinstance(self.max_usage, int) and not isinstance(self.max_usage, bool) and self.max_usage < 1:
            raise ConfigError(f"max_usage must be >= 1, got {self.max_usage}")
        if self.slack < 1.0:
            raise ConfigError(f"slack must be >= 1 (below 1 the capacity cannot cover every content position), "
                              f"got {self.slack}")
        if self.top_k < 1 or self.window < 0 or self.n_random < 0 or self.max_rounds < 1:
            raise ConfigError("top_k and max_rounds must be >= 1, window and n_random >= 0")
        if self.max_global_pairs < 1:
            raise ConfigError(f"max_global_pairs must be >= 1, got {self.max_global_pairs}")
        if self.blend_in_place_above < 0:
            raise ConfigError(f"blend_in_place_above must be >= 0, got {self.blend_in_place_above}")
        if self.tile < 0:
            raise ConfigError(f"tile must be >= 0 (0: no tiling), got {self.tile}")
        if self.tolerance < 0 or self.exact_fill_rows < 0:
            raise ConfigError(f"tolerance and exact_fill_rows must be >= 0, got {self.tolerance}, {self.exact_fill_rows}")
        if self.stop_on not in STOP_MODES or self.content_share not in CONTENT_SHARES:
            raise ConfigError(f"stop_on must be one of {STOP_MODES} and content_share one of {CONTENT_SHARES}; got "
                              f"{self.stop_on!r}, {self.content_share!r}")
        if self.warm_start not in WARM_STARTS:
            raise ConfigError(f"warm_start must be one of {', '.join(WARM_STARTS)}; got {self.warm_start!r}")
        if self.swap_rounds < 0:
            raise ConfigError(f"swap_rounds must be >= 0, got {self.swap_rounds}")
        if self.sweeps < 1 or self.knn < 1 or self.fill_probes < 0:
            raise ConfigError(f"sweeps and knn must be >= 1, got {self.sweeps}, {self.knn}")
        if self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"preserve_color must be one of none, luminance, histogram; got {self.preserve_color!r}")

    @property
    def taps(self) -> list[str]:
        return [lv.tap for lv in self.levels]

    @property
    def stride(self) -> int:
        """Image sides must be multiples of this (the deepest level's stride)."""
        return max(lv.stride for lv in self.levels)

    def min_side(self) -> int:
        """Smallest image side for which the deepest level's feature map still holds one whole patch."""
        deepest = self.levels[0]
        return deepest.patch_size * deepest.stride

    def usage_rule(self) -> UsageRule:
        if self.max_usage is None:
            return UsageRule("none")
        if self.max_usage == "auto":
            return UsageRule("auto", slack=self.slack)
        return UsageRule("fixed", limit=int(self.max_usage))

    def usage_limit(self, n_content: int, n_style: int) -> int | None:
        """The largest number of uses of one style position for a region of this size."""
        if self.max_usage is None:
            return None
        if self.max_usage == "auto":
            return max(1, math.ceil(self.usage_rule().total(n_content, n_style) / n_style - 1e-9))
        return int(self.max_usage)

    def to_dict(self) -> dict:
        return asdict(self)

    def blend_alphas(self, carried: bool) -> list[float]:
        """The weight of the content features in each level's blend. Carried levels (decoders) blend their carried
        content at ``alpha``; otherwise, with ``content_share="release"``, at the product of the alphas so far."""
        if carried or self.content_share == "per_level":
            return [lv.alpha for lv in self.levels]
        return content_shares([lv.alpha for lv in self.levels])


def content_shares(alphas: Sequence[float]) -> list[float]:
    """The content's share of each level's target when the blends are carried down: the running product."""
    return [math.prod(alphas[:i + 1]) for i in range(len(alphas))]


def _per_level(values, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    if not isinstance(values, (list, tuple)):
        return [values] * n
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ConfigError(f"{name} has {len(values)} values but there are {n} levels")
    return list(values)


def carried_alphas(n_levels: int, alpha: float = DEFAULT_ALPHA) -> list[float]:
    """The ``alpha="split"`` option (genkit 0.3's decoder-path default, not the release's): the last level blends at
    ``alpha`` and the levels before it split one ``alpha`` geometrically, so a carried content keeps ``alpha**2`` of
    the final target for any number of levels (the release's equal weights give ``alpha**n``)."""
    if n_levels <= 2:
        return [alpha] * n_levels
    return [alpha ** (1.0 / (n_levels - 1))] * (n_levels - 1) + [alpha]


def build_config(levels: Sequence[str] | None = None, alpha=None, patch_size=None, iterations=None, pca_dims="default",
                 patch_dims="default", search=None, **kwargs) -> ReshuffleConfig:
    """A :class:`ReshuffleConfig` from flat options; per-level options take one value or one per level.

    ``pca_dims`` / ``patch_dims``: ``"default"`` keeps the per-tap defaults, None disables the projection.
    ``alpha``: None (the release's 0.6 at every level), one value, one per level, or ``"split"``
    (:func:`carried_alphas`).
    """
    taps = list(levels) if levels else list(DEFAULT_LEVELS)
    n = len(taps)
    if alpha is None:
        alpha = DEFAULT_ALPHA
    elif alpha == "split" or alpha == ["split"]:
        alpha = carried_alphas(n)
    per = {
        "alpha": _per_level(alpha, n, "alpha"),
        "patch_size": _per_level(patch_size, n, "patch_size"),
        "iterations": _per_level(iterations, n, "iterations"),
        "search": _per_level(search, n, "search"),
    }
    def dims(value, name):
        if value is None:
            return [None] * n
        return ["default"] * n if value == "default" else _per_level(value, n, name)

    pca, pdims = dims(pca_dims, "pca_dims"), dims(patch_dims, "patch_dims")
    out = []
    for i, tap in enumerate(taps):
        over = {k: v[i] for k, v in per.items() if v[i] is not None}
        if pca[i] != "default":
            over["pca_dims"] = pca[i]
        if pdims[i] != "default":
            over["patch_dims"] = pdims[i]
        out.append(LevelConfig.default(tap, **over))
    return ReshuffleConfig(levels=out, **kwargs)


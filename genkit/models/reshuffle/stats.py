"""Usage statistics of an assignment: how many style patches were used, how often, how evenly.

The wash-out the reshuffle fixes is visible here: nearest-neighbour matching (``max_usage=None``) reuses a
few style patches everywhere (low ``distinct_fraction``, high ``max_usage``); the constrained matching uses
(almost) all of them about equally often.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch


@dataclass
class LevelStats:
    tap: str
    content_hw: tuple[int, int]
    style_hw: tuple[int, int]
    usage_limit: int | None | dict  # the largest capacity of one style position (per label with semantic masks)
    max_usage: int
    distinct_used: int
    distinct_fraction: float
    effective_fraction: float  # exp(entropy of the usage distribution) / N_style; 1.0 = perfectly even
    mean_similarity: float  # mean true cosine of each content patch and its style patch (full-dimensional features)
    n_filled: int  # positions the final iteration's greedy pass left to the fill
    iterations: int  # iterations run (<= max_iterations: early stop)
    searches: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    fill: dict = field(default_factory=dict)  # final iteration: leftovers placed by a "greedy" pass / "exact" / "chunked"
    fill_share: float = 0.0  # final iteration: share of the positions the fill placed
    fill_similarity: float | None = None  # ... their mean similarity (matching space)
    matched_similarity: float | None = None  # ... that of the positions the greedy pass over candidates placed
    swapped: int = 0  # final iteration: exchanges of style positions the refinement after the fill made
    alpha: float | None = None  # the level's content weight (its setting)
    blend_alpha: float | None = None  # the weight of the level's content features in its blend
    content_share: float | None = None  # the original content's share of the level's target (prod of the alphas)
    detail_restored: bool = False  # the content's detail was added back after decoding this level
    warm_start: bool = False  # the first target blended the content with the coarser assignment's vote
    stop_reason: str = ""  # "similarity", "changed", "blend" (early stop) or "iterations"
    similarities: list[float] = field(default_factory=list)  # mean_similarity (true cosine) after each iteration's match
    changed: list[float] = field(default_factory=list)  # share of positions whose match changed, per iteration
    mask_lost: list[dict] = field(default_factory=list)  # labels that vanished at this level (side, label, pixels)
    usage_quota: float | None | dict = None  # average uses allowed per style position (slack * Nc / Ns)
    capacity_total: int | None = None  # sum of the per-position capacities
    max_iterations: int = 0
    converged: bool = False  # stopped early: the blended target changed by less than the tolerance
    changes: list[float] = field(default_factory=list)  # relative change of the blended target, per iteration
    approximate: list[str] = field(default_factory=list)  # approximations made at this level (empty: exact)
    mask_unrestricted: list[int] = field(default_factory=list)  # labels matched without the mask restriction
    assignment: torch.Tensor | None = field(default=None, repr=False)  # (Hc, Wc) flat style indices
    usage: torch.Tensor | None = field(default=None, repr=False)  # (Hs, Ws) use count per style position
    capacity: torch.Tensor | None = field(default=None, repr=False)  # (Hs, Ws) capacity per style position

    @property
    def n_content(self) -> int:
        return self.content_hw[0] * self.content_hw[1]

    @property
    def n_style(self) -> int:
        return self.style_hw[0] * self.style_hw[1]

    def as_dict(self) -> dict:
        """JSON-friendly summary (no tensors)."""
        def keyed(v):
            return {str(k): v for k, v in v.items()} if isinstance(v, dict) else v

        return {
            "tap": self.tap, "content_hw": list(self.content_hw), "style_hw": list(self.style_hw),
            "usage_limit": keyed(self.usage_limit), "usage_quota": keyed(self.usage_quota),
            "capacity_total": self.capacity_total,
            "max_usage": self.max_usage, "distinct_used": self.distinct_used,
            "distinct_fraction": round(self.distinct_fraction, 6),
            "effective_fraction": round(self.effective_fraction, 6),
            "mean_similarity": round(self.mean_similarity, 6), "n_filled": self.n_filled,
            "fill": dict(self.fill), "fill_share": round(self.fill_share, 6),
            "fill_similarity": _round(self.fill_similarity), "matched_similarity": _round(self.matched_similarity),
            "swapped": self.swapped,
            "alpha": self.alpha, "blend_alpha": _round(self.blend_alpha), "content_share": _round(self.content_share),
            "detail_restored": self.detail_restored, "warm_start": self.warm_start,
            "iterations": self.iterations, "max_iterations": self.max_iterations, "converged": self.converged,
            "stop_reason": self.stop_reason, "similarities": [round(v, 6) for v in self.similarities],
            "changed": [round(v, 6) for v in self.changed], "mask_lost": list(self.mask_lost),
            "changes": [round(c, 6) for c in self.changes], "searches": list(self.searches),
            "approximate": list(self.approximate),
            "mask_unrestricted": list(self.mask_unrestricted),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def _round(v, digits: int = 6):
    return None if v is None else round(float(v), digits)


def usage_summary(assign: torch.Tensor, n_style: int) -> dict:
    """``max_usage``, ``distinct_used``, ``distinct_fraction``, ``effective_fraction`` and the count vector."""
    counts = torch.bincount(assign.reshape(-1), minlength=n_style)
    used = int((counts > 0).sum())
    p = counts[counts > 0].double() / counts.sum()
    entropy = float(-(p * p.log()).sum())
    return {
        "usage": counts,
        "max_usage": int(counts.max()),
        "distinct_used": used,
        "distinct_fraction": used / n_style,
        "effective_fraction": math.exp(entropy) / n_style,
    }


def now(ref: torch.Tensor | None = None) -> float:
    """``perf_counter`` after queued GPU work on ``ref``'s device is done, so stage timings are real on CUDA."""
    if ref is not None and ref.is_cuda:
        torch.cuda.synchronize(ref.device)
    return time.perf_counter()

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
them as its hyper-parameters (so checkpoints load with ``weights_only=True``) and builds the objects itself with
:mod:`genkit.core.hparams`, as every genkit module does.
From Python, partial dicts work too (missing keys take the defaults), and optimiser/scheduler/EMA factories
may be given as ``functools.partial`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    fid: Any = "auto"
    fid_protocol: str = "torch-fidelity"  # or clean-fid, pytorch-fid, ... (genkit.metrics.protocols)

    def __post_init__(self):
        if not isinstance(self.fid, bool) and self.fid != "auto":
            raise ValueError(f"fid must be true, false or auto, got {self.fid!r}")
        from genkit.metrics.protocols import PROTOCOLS

        if self.fid_protocol not in PROTOCOLS:
            raise ValueError(f"fid_protocol must be one of {', '.join(PROTOCOLS)}, got {self.fid_protocol!r}")

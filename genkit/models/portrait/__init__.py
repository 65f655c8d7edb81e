"""Mask-guided portrait editing with conditional GANs (Gu et al., CVPR 2019): paper (A).

Modules, one job each::

    components     face components from a label map: regions, centres, crops, placement of feature maps
    encoders       per-component encoders (AE or VAE), image decoders, feature decoders; ComponentCodes
    generator      mask encoder, fusion + residual trunk, background fusing, paste into the photo; PortraitGenerator
    compositing    the edit region, its feathered paste weight, the paste (the photo is kept by construction)
    losses         adversarial (logits), feature matching, masked VGG, balanced L1, appearance, KL; LossWeights
    config         the module's sub-configs (TrainingScheme, ParserSettings, ValidationSettings) and their building
    module         PortraitGAN LightningModule (manual optimisation, paired/transfer steps, EMA, schedule)
    ema, schedule  EMA with warm-up; constant-then-linear learning-rate decay
    evaluation     validation metrics (LPIPS, FID, mask consistency); measurements of edits
    checkpoint     checkpoint block, export, loading a generator for inference
    parser_checks  what a parser checkpoint was trained on, and warnings when it meets other images
    editor         PortraitEditor: reconstruct / transfer / regenerate / sample / folders / photographs

Names are imported lazily so ``import genkit.models.portrait`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ComponentLayout": "components", "PORTRAIT_COMPONENTS": "components", "COMPONENT_NAMES": "components",
    "ComponentCodes": "encoders", "LocalEmbedding": "encoders",
    "PortraitGenerator": "generator",
    "PortraitGAN": "module", "LossWeights": "losses", "TrainingScheme": "config", "WarmupEMA": "ema",
    "PortraitEditor": "editor", "EditResult": "editor",
    "load_generator": "checkpoint", "export_generator": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Mask-guided portrait editing with conditional GANs (Gu et al., CVPR 2019): paper (A).

Modules, one job each::

    components   face components from a label map: regions, centres, crops, placement of feature maps
    encoders     per-component encoders (AE or VAE), image decoders, feature decoders; ComponentCodes
    generator    mask encoder, fusion + residual trunk, background fusing; PortraitGenerator
    losses       adversarial (logits), feature matching, masked VGG, masked L1, KL
    module       PortraitGAN LightningModule (manual optimisation, paired/unpaired steps, EMA, schedule)
    evaluation   validation metrics (LPIPS, FID, mask consistency), guarded
    checkpoint   checkpoint block, export, loading a generator for inference
    editor       PortraitEditor: reconstruct / transfer / regenerate / sample (notebook and CLI API)

Names are imported lazily so ``import genkit.models.portrait`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ComponentLayout": "components", "PORTRAIT_COMPONENTS": "components", "COMPONENT_NAMES": "components",
    "ComponentCodes": "encoders", "LocalEmbedding": "encoders",
    "PortraitGenerator": "generator",
    "PortraitGAN": "module",
    "PortraitEditor": "editor", "EditResult": "editor",
    "load_generator": "checkpoint", "export_generator": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

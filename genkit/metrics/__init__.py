"""Metrics: FID, KID, LPIPS, LPIPS diversity, style-transfer distances (torchmetrics ``Metric``s and functions).

Numbers follow the reference implementations (torch-fidelity's Inception and KID estimator, the ``lpips``
package) and every reported result carries a protocol record (weights sha256 or RANDOM, resize mode, sample
count, image sizes). Names are imported lazily so ``import genkit.metrics.<module>`` stays light.

=====================  ===========================================================================
module                 contents
=====================  ===========================================================================
``keys``               result and protocol key constants
``inception``          ``build_inception`` (the one FID/KID feature extractor), ``to_uint8``
``fid``                ``frechet_distance``, ``FrechetInceptionDistance`` (Metric), ``fid_between``
``kid``                ``kid_from_features``, ``KernelInceptionDistance`` (Metric), ``kid_between``
``stats_cache``        ``FIDStats``, ``load_npz`` / ``save_npz`` (pytorch-fid format), the statistics cache
                       (``cache_entries``, ``clear_cache``; capped by ``GENKIT_STATS_CACHE_MAX``)
``lpips``              ``build_lpips``, ``lpips_distance``, ``lpips_diversity``, ``LPIPSMetric``,
                       ``LPIPSDiversity``, ``lpips_between``
``style``              ``content_distance``, ``gram_style_distance``, ``lpips_to_content``,
                       ``patch_usage_stats``, ``style_transfer_metrics``, ``StyleTransferMetrics``
``health``             ``health_checks`` (N1-N4: is a stylised image healthy?), ``style_progress``,
                       ``sliced_wasserstein``
``segmentation``       ``mean_iou``, ``per_class_iou`` (NaN for absent classes), ``pixel_accuracy``
``mask_consistency``   ``MaskConsistency`` (a frozen parser's mIoU / accuracy on generated images)
``folders``            folder reading (genkit.core decoding, size bookkeeping, pairing by name)
``protocols``          FID protocols (torch-fidelity, clean-fid, pytorch-fid): ``build_extractor``,
                       ``compare_protocols``; ``extractors``: the clean-fid / pytorch-fid pipelines
``manifold``           ``precision_recall_density_coverage``, ``PrecisionRecallDensityCoverage``, ``prdc_between``
=====================  ===========================================================================
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_inception": "inception", "random_inception": "inception", "InceptionFeatures": "inception",
    "to_uint8": "inception",
    "frechet_distance": "fid", "fid_from_stats": "fid", "SmallSampleWarning": "fid",
    "FrechetInceptionDistance": "fid", "fid_between": "fid",
    "folder_stats": "fid", "folder_features": "fid", "save_folder_stats": "fid",
    "kid_from_features": "kid", "KernelInceptionDistance": "kid", "kid_between": "kid",
    "FIDStats": "stats_cache", "load_npz": "stats_cache", "save_npz": "stats_cache",
    "build_lpips": "lpips", "lpips_distance": "lpips", "lpips_diversity": "lpips", "LPIPSMetric": "lpips",
    "LPIPSDiversity": "lpips", "lpips_between": "lpips",
    "content_distance": "style", "gram_style_distance": "style", "gram_matrix": "style",
    "lpips_to_content": "style", "patch_usage_stats": "style", "style_transfer_metrics": "style",
    "StyleTransferMetrics": "style",
    "build_extractor": "protocols", "compare_protocols": "protocols",
    "precision_recall_density_coverage": "manifold", "PrecisionRecallDensityCoverage": "manifold",
    "prdc_between": "manifold",
    "health_checks": "health", "style_progress": "health", "sliced_wasserstein": "health",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

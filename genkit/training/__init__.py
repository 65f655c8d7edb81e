"""The experiment runtime: the Hydra entry point (``genkit-train``), runs and resume, W&B tracking, sweeps and the
Lightning callbacks every model shares.

May import :mod:`genkit.core`, :mod:`genkit.nn`, :mod:`genkit.data`, :mod:`genkit.metrics` and :mod:`genkit.models`
(models are reached through their ``_target_`` in the configs); nothing below imports this package.
"""

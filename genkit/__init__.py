"""genkit: one toolkit for mask-guided portrait editing (cGAN) and deep-feature-reshuffle style transfer."""

__version__ = "0.1.0"

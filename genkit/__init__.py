"""genkit: one toolkit for mask-guided portrait editing (cGAN) and deep-feature-reshuffle style transfer."""

import os as _os

# OpenMP threads that busy-wait between parallel regions slow the many small ops of patch matching ~5x when
# the cores are shared (measured on 2-core machines). Set before torch loads; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

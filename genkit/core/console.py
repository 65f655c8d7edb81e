"""Each console line once, for genkit's entry points (the ``genkit`` CLI and ``genkit-train``).

Where the root logger already prints every record (``genkit``'s ``basicConfig``, Hydra's job logging), two
sources would print some lines twice; notebooks and library users (no root handler) keep both unchanged.
"""

from __future__ import annotations

import logging
import warnings

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def _not_an_advert(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()  # Lightning's "try installing litlogger" tip


def silence_random_weights_warning() -> None:
    """The random-weights notice is logged by :mod:`genkit.core.weights` and also raised as a ``RuntimeWarning`` (for
    notebooks); in a console the log line is enough."""
    warnings.filterwarnings("ignore", message="RANDOM WEIGHTS", category=RuntimeWarning)


def one_line_per_lightning_record() -> None:
    """Lightning's package logger carries a console handler of its own and also propagates to the root logger:
    drop that handler when the root prints already (call after ``import lightning``), and drop its advert."""
    root = logging.getLogger()
    if root.handlers:
        for name in _LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_an_advert)

"""Option values the command line refuses before any work: sizes past a ceiling (memory grows with the square of
the side: ``genkit parse --size 20000`` reached 14 GB), numbers that must be finite and positive (``--lr nan``),
negative thread counts (:func:`add_threads_option`) and empty paths (:func:`non_empty_path`: ``-o "$UNSET"``).

``add_size_ceiling(parser, "--size", ...)`` adds ``--allow-large`` and registers the check; :func:`genkit.cli.main`
runs it right after parsing, so ``--size 100000`` is refused in well under a second, before torch is imported.
"""

from __future__ import annotations

import argparse
import math

MAX_SIDE = 4096  # px; past it a run needs --allow-large


def add_size_ceiling(parser: argparse.ArgumentParser, *options: str, ceiling: int = MAX_SIDE) -> None:
    """``--allow-large`` and a check that each of ``options`` (e.g. ``--size``) is at most ``ceiling`` px."""
    parser.add_argument("--allow-large", action="store_true",
                        help=f"allow {'/'.join(options)} above {ceiling} px (memory and time grow with the square "
                             "of the side)")
    parser.set_defaults(size_ceiling=(ceiling, options))


def check_size_ceiling(args: argparse.Namespace) -> str | None:
    """The one-line problem of a size option past its ceiling or negative, else ``None``."""
    ceiling, options = getattr(args, "size_ceiling", (None, ()))
    for option in options:
        value = getattr(args, option.lstrip("-").replace("-", "_"), None)
        if not isinstance(value, (int, float)):  # None, or a word such as `--size photo`
            continue
        if value < 0:
            return f"{option} {value}: must be >= 0"
        if value > ceiling and not args.allow_large:
            return (f"{option} {value}: over the {ceiling} px ceiling (memory grows with the square of the side); "
                    "add --allow-large to go past it")
    return None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (learning rates, scales)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0 (weights, tolerances)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """An argparse type: a number of CPU threads, an integer >= 0 (0: the command's default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: the default), got {text!r}")
    return value


def add_threads_option(parser, default: str = "torch's default") -> argparse.Action:
    """``--threads N`` of every command (:func:`thread_count`); unset or 0 means ``default``."""
    return parser.add_argument("--threads", type=thread_count, default=None, metavar="N",
                               help=f"CPU threads for torch (0 or unset: {default})")


def non_empty_path(text: str) -> str:
    """An argparse type: a path that is not empty or blank (``-o "$OUT"`` with ``OUT`` unset would otherwise mean
    the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty path {text!r}: give a file or folder name (an unset shell variable?)")
    return text

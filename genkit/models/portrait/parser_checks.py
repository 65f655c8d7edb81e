"""What a face-parser checkpoint says about its training, and the warnings when it is used outside it.

A parser trained on synthetic faces parses photos badly, and one trained at another resolution sees faces at
another scale; neither is an error (the user may know better), but both deserve a line in the log and in the
edit's notes. Parser checkpoints record their training data in ``checkpoint["genkit_parser"]["training"]``
(``data_source``, ``synthetic_data``); older checkpoints without it are simply not judged.
"""

from __future__ import annotations

from pathlib import Path

from genkit.models.parsing.checkpoint import parser_block


def parser_training(path: str | Path) -> dict:
    """The ``training`` record of a parser checkpoint or model folder (``{}`` when it has none)."""
    training = parser_block(path).get("training", {})
    return dict(training) if isinstance(training, dict) else {}


def parser_warnings(training: dict, parser_size: int | None, image_size: int, photos: bool,
                    name: str = "the face parser") -> list[str]:
    """Lines to log when a parser (``training`` record, training size) parses ``image_size`` images; ``photos``
    says whether those images are real photos (not synthetic faces)."""
    out = []
    if photos and training.get("synthetic_data"):
        out.append(f"{name} was trained on SYNTHETIC faces; its masks of real photos are unreliable (give a mask, or "
                   "a parser trained on Helen / CelebAMask-HQ)")
    if parser_size and int(parser_size) != int(image_size):
        out.append(f"{name} was trained at {parser_size} px but parses {image_size} px images here; faces appear at "
                   "another scale than in its training")
    return out

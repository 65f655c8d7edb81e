"""The image-reading options every command that reads photos shares (``--strict-modes``, ``--transparency``).

The policy itself lives in :class:`genkit.core.reading.ReadPolicy`; this only maps the command line onto it.
"""

from __future__ import annotations


def add_reading_options(p, what: str = "images") -> None:
    from genkit.core.reading import TRANSPARENCY

    g = p.add_argument_group("image reading")
    g.add_argument("--strict-modes", action="store_true",
                   help=f"refuse {what} that are not already 8-bit RGB (greyscale, RGBA, palette, CMYK, 16-bit) "
                        "instead of converting them (the conversion is recorded in the output metadata)")
    g.add_argument("--transparency", choices=TRANSPARENCY, default="drop",
                   help="transparent images: drop the alpha channel (default, as Pillow, torch-fidelity and "
                        "pytorch-fid do) or composite them over white")


def reading_policy(args, profile: str = "photo"):
    """The :class:`~genkit.core.reading.ReadPolicy` the options ask for (``profile``: ``photo`` or ``torch-fidelity``)."""
    from genkit.core.reading import ReadPolicy

    return ReadPolicy(strict=args.strict_modes, transparency=args.transparency, profile=profile)

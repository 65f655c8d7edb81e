"""The ``genkit`` command.

Each module in this package that defines ``register(subparsers)`` adds one sub-command (``data``, ``weights``,
``stylize``, ``eval``, ...). Heavy imports happen inside the handlers so ``genkit --help`` stays fast.
User errors (:class:`~genkit.errors.GenkitError`) print one clear line and exit non-zero; ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genkit", description="genkit: portrait editing (cGAN) and style "
                                     "transfer (deep feature reshuffle) with shared data, metrics and experiments.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genkit.errors import GenkitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.handler(args)
    except GenkitError as exc:
        if args.debug:
            raise
        print(f"genkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("genkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``genkit`` command.

Each module in this package that defines ``register(subparsers)`` adds one sub-command (``data``, ``weights``,
``stylize``, ``eval``, ...). Heavy imports happen inside the handlers so ``genkit --help`` stays fast.
User errors (:class:`~genkit.core.errors.GenkitError`) print one clear line and exit non-zero, and genkit's own
warnings print as one line (``genkit: warning: ...``, without Python's file path and source line); ``--debug`` shows
the traceback and the full warnings.

Every parser of the tree is a :class:`ArgumentParser`: help shows each option's default, docstring markup in
descriptions is shown as plain text, and :func:`add_device_option` gives every command the same ``--device``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import re
import sys
import warnings
from pathlib import Path

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"
_MARKUP = re.compile(r"``([^`]+)``|:[a-z]+:`~?([^`]+)`")


def markup_to_text(text: str) -> str:
    """Docstring markup as plain text: ````x```` -> x, :func:`~a.b` -> a.b."""
    return _MARKUP.sub(lambda m: m.group(1) or m.group(2), text)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` for options with a real default whose help does not already state one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = markup_to_text(action.help or "")
        if (action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower()
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))):
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(markup_to_text(text), width, indent)


class RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter` keeping the description's line breaks (usage examples)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(markup_to_text(text), width, indent)


class ArgumentParser(argparse.ArgumentParser):
    """The parser class of the whole ``genkit`` tree (sub-commands inherit it): defaults always shown, and a bad
    option is one line (``genkit stylize: error: argument --lr: must be a positive number, got 'nan'``)."""

    def __init__(self, *args, formatter_class: type = HelpFormatter, **kwargs):
        if not issubclass(formatter_class, HelpFormatter):
            raw = issubclass(formatter_class, argparse.RawDescriptionHelpFormatter)
            formatter_class = RawDescriptionHelpFormatter if raw else HelpFormatter
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def add_device_option(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--device`` with genkit's one policy (resolve the value with :func:`genkit.core.device.resolve_device`)."""
    return parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def build_parser() -> argparse.ArgumentParser:
    from genkit import __version__

    parser = ArgumentParser(prog="genkit", description="genkit: portrait editing (cGAN) and style "
                            "transfer (deep feature reshuffle) with shared data, metrics and experiments. "
                            "`genkit COMMAND --help` shows each command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


_PACKAGE = Path(__file__).resolve().parent.parent  # genkit/


def _one_line_warnings(show):
    """A ``warnings.showwarning`` that prints a warning raised in genkit's code as ``genkit: warning: MESSAGE`` (the
    message is what the user acts on; file path and source line are internals) and hands others to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            ours = Path(filename).resolve().is_relative_to(_PACKAGE)
        except (OSError, ValueError):
            ours = False
        if not ours:
            return show(message, category, filename, lineno, file, line)
        try:
            (file or sys.stderr).write(f"genkit: warning: {message}\n")
        except OSError:  # as warnings.showwarning: a closed or broken stream loses the warning, not the run
            pass

    return showwarning


def main(argv: list[str] | None = None) -> int:
    from genkit.core.console import silence_random_weights_warning
    from genkit.core.errors import FileSystemError, GenkitError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    from genkit.cli.limits import check_size_ceiling

    problem = check_size_ceiling(args)  # before any import or work: --size 100000 is refused at once
    if problem:
        print(f"genkit: error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    silence_random_weights_warning()
    shown = warnings.showwarning
    if not args.debug:
        warnings.showwarning = _one_line_warnings(shown)
    try:
        result = args.handler(args)
    except (GenkitError, OSError) as exc:  # OSError: disk full, permission denied... (one line naming the path)
        if args.debug:
            raise
        error = exc if isinstance(exc, GenkitError) else FileSystemError.from_os_error(exc)
        print(f"genkit: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("genkit: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
